//! Instants on the wire and on command lines: RFC 3339 (`2026-11-24T07:00:00Z`), one parser
//! for every place that reads one.

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
}
