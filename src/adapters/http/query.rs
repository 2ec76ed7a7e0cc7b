//! Query-string values shared by the audit endpoints: a resumption point (`after`) and a
//! page size (`limit`), each refused with one `invalid-argument` line when malformed.

use crate::protocol::IamError;

/// `after`: absent is 0 (the start); otherwise a whole number, 0 or more. `what` names what
/// the number is, e.g. "an event position".
pub fn after(raw: Option<&str>, what: &str) -> Result<i64, IamError> {
    match raw {
        None => Ok(0),
        Some(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|a| *a >= 0)
            .ok_or_else(|| IamError::invalid(format!("after must be {what} (a whole number, 0 or more)"))),
    }
}

/// `limit`: absent is `default`; otherwise a whole number of at least 1, capped at `max`.
pub fn limit(raw: Option<&str>, default: i64, max: i64) -> Result<i64, IamError> {
    match raw {
        None => Ok(default),
        Some(s) => s
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|l| *l >= 1)
            .map(|l| l.min(max as u64) as i64)
            .ok_or_else(|| IamError::invalid(format!("limit must be a whole number from 1 to {max}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_defaults_to_the_start_and_refuses_what_is_not_a_position() {
        assert_eq!(after(None, "an event position").unwrap(), 0);
        assert_eq!(after(Some(" 42 "), "an event position").unwrap(), 42);
        for bad in ["-1", "abc", ""] {
            assert_eq!(
                after(Some(bad), "a record id").unwrap_err().message,
                "after must be a record id (a whole number, 0 or more)"
            );
        }
    }

    #[test]
    fn limit_defaults_caps_and_refuses_zero() {
        assert_eq!(limit(None, 100, 1_000).unwrap(), 100);
        assert_eq!(limit(Some("5000"), 100, 1_000).unwrap(), 1_000);
        assert_eq!(
            limit(Some("0"), 100, 1_000).unwrap_err().message,
            "limit must be a whole number from 1 to 1000"
        );
    }
}
