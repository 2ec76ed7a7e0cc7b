//! Instants on the wire and on command lines: RFC 3339 (`2026-11-24T07:00:00Z`), one parser
//! for every place that reads one; and durations as Go writes them (`24h`, `1h30m`, `1.5h`),
//! which Netsoc's clients send.

use chrono::{DateTime, Utc};

/// What every refusal shows as an example.
pub const EXAMPLE: &str = "2026-11-24T07:00:00Z";

/// `raw` (surrounding whitespace ignored) as an instant in UTC; the parser's complaint
/// otherwise (it never repeats the input).
pub fn instant(raw: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(raw.trim()).map(|t| t.with_timezone(&Utc)).map_err(|e| e.to_string())
}

/// [`instant`] where empty means none.
pub fn optional_instant(raw: &str) -> Result<Option<DateTime<Utc>>, String> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    instant(raw).map(Some)
}

/// A duration in Go's syntax (`time.ParseDuration`): an optional sign, then one or more
/// decimal numbers, each with an optional fraction and a unit — `ns`, `us` (`µs`, `μs`), `ms`,
/// `s`, `m`, `h` — e.g. `300ms`, `1.5h`, `2h45m`, `876000h`; `0` alone is zero. The parser's
/// complaint otherwise (it never repeats the input).
pub fn go_duration(raw: &str) -> Result<chrono::Duration, String> {
    let mut rest = raw;
    let negative = match rest.as_bytes().first() {
        Some(b'-') => {
            rest = &rest[1..];
            true
        }
        Some(b'+') => {
            rest = &rest[1..];
            false
        }
        _ => false,
    };
    if rest == "0" {
        return Ok(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return Err("a duration needs a number and a unit, e.g. 24h or 1h30m".into());
    }
    let mut nanos: i128 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return Err("each part of a duration is a number, e.g. 1.5h".into());
        }
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "" => return Err("each number of a duration needs a unit: ns, us, ms, s, m or h".into()),
            _ => return Err("unknown unit in a duration: use ns, us, ms, s, m or h".into()),
        };
        let too_long = || "the duration is too long".to_string();
        let whole: i128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| too_long())? };
        let mut part = whole.checked_mul(scale).ok_or_else(too_long)?;
        // The fraction, digit by digit (Go keeps nanosecond precision the same way).
        let mut place = scale;
        for digit in fraction.bytes().map(|b| i128::from(b - b'0')) {
            place /= 10;
            part += digit * place;
        }
        nanos = nanos.checked_add(part).ok_or_else(too_long)?;
        if nanos > i128::from(i64::MAX) {
            return Err(too_long());
        }
        rest = next;
    }
    let nanos =
        i64::try_from(if negative { -nanos } else { nanos }).map_err(|_| "the duration is too long")?;
    Ok(chrono::Duration::nanoseconds(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_rfc_3339_in_utc() {
        assert_eq!(instant(" 2026-11-24T08:00:00+01:00 ").unwrap(), instant(EXAMPLE).unwrap());
        assert!(instant("yesterday").is_err());
        assert_eq!(optional_instant("").unwrap(), None);
        assert!(optional_instant("2026-13-01T00:00:00Z").is_err());
    }

    #[test]
    fn durations_are_read_as_go_writes_them() {
        let d = |raw: &str| go_duration(raw).map(|d| d.num_milliseconds());
        assert_eq!(d("24h"), Ok(86_400_000));
        assert_eq!(d("1h30m"), Ok(5_400_000));
        assert_eq!(d("1.5h"), Ok(5_400_000));
        assert_eq!(d("2h45m30.5s"), Ok(9_930_500));
        assert_eq!(d("300ms"), Ok(300));
        assert_eq!(d("876000h"), Ok(876_000 * 3_600_000));
        assert_eq!(d("-1m"), Ok(-60_000));
        assert_eq!(d("0"), Ok(0));
        assert_eq!(go_duration("1500us").unwrap().num_microseconds(), Some(1_500));
        assert_eq!(go_duration("1µs").unwrap().num_nanoseconds(), Some(1_000));
        for bad in ["", "24", "h", "1d", "1.2.3h", "1 h", "tomorrow", "99999999999999999999h", "3000000h"] {
            assert!(go_duration(bad).is_err(), "{bad}");
        }
    }
}
