//! Keyset pagination for the list operations: rows come ordered by (created, id), and a page
//! starts after the (created, id) its cursor names, so pages stay correct while rows are added.
//! A cursor is opaque to callers: base64url of `[created in microseconds, id]`.

use crate::protocol::IamError;
use base64::Engine;
use chrono::{DateTime, Utc};

/// The most rows one page may hold.
pub const MAX_LIMIT: u32 = 500;

/// Which rows a list returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// Start after this (created, id); `None` starts at the beginning.
    pub after: Option<(DateTime<Utc>, String)>,
    /// At most this many rows; `None` is every row (the protocol without `limit`).
    pub limit: Option<i64>,
}

impl Page {
    /// From a request's `limit` (0: no limit) and `cursor` (empty: the first page).
    pub fn from_request(limit: u32, cursor: &str) -> Result<Page, IamError> {
        if limit > MAX_LIMIT {
            return Err(IamError::invalid(format!("limit must be between 1 and {MAX_LIMIT}")));
        }
        let after = if cursor.is_empty() { None } else { Some(decode(cursor)?) };
        Ok(Page { after, limit: (limit > 0).then_some(i64::from(limit)) })
    }

    /// The rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch(&self) -> Option<i64> {
        self.limit.map(|l| l + 1)
    }

    /// Trims `rows` (fetched with [`Page::fetch`]) to the page; the cursor of the next page
    /// when there is one. `key` gives a row's (created, id).
    pub fn cut<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> (DateTime<Utc>, String)) -> (Vec<T>, String) {
        let Some(limit) = self.limit.and_then(|l| usize::try_from(l).ok()) else {
            return (rows, String::new());
        };
        if rows.len() <= limit {
            return (rows, String::new());
        }
        rows.truncate(limit);
        let next = rows.last().map(|last| encode(&key(last))).unwrap_or_default();
        (rows, next)
    }
}

fn encode((created, id): &(DateTime<Utc>, String)) -> String {
    let text = serde_json::json!([created.timestamp_micros(), id]).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn decode(cursor: &str) -> Result<(DateTime<Utc>, String), IamError> {
    let invalid = || IamError::invalid("cursor is not one iamd gave out");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let (micros, id): (i64, String) = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let created = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
    // Every cursor iamd gives out names a creation time and an id it wrote: a time PostgreSQL
    // cannot hold, or an id no row can have, is a forgery, refused before any query.
    use chrono::Datelike;
    if !(1970..=9999).contains(&created.year()) || id.contains('\0') || id.len() > super::MAX_ID_FIELD {
        return Err(invalid());
    }
    Ok((created, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &i64) -> (DateTime<Utc>, String) {
        (DateTime::from_timestamp_micros(*n).unwrap(), format!("id-{n}"))
    }

    #[test]
    fn a_cursor_round_trips_to_microseconds() {
        let at = DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap();
        let cursor = encode(&(at, "u-1".into()));
        let page = Page::from_request(10, &cursor).unwrap();
        assert_eq!(page.after, Some((at, "u-1".into())));
        assert_eq!(page.limit, Some(10));
        assert_eq!(page.fetch(), Some(11));
    }

    #[test]
    fn limits_and_cursors_are_checked() {
        assert_eq!(Page::from_request(0, "").unwrap(), Page::default());
        assert!(Page::from_request(MAX_LIMIT, "").is_ok());
        assert_eq!(
            Page::from_request(MAX_LIMIT + 1, "").unwrap_err().message,
            "limit must be between 1 and 500"
        );
        let forged = |micros: i64, id: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(&(micros, id)).unwrap())
        };
        let year_minus_5000 = -219_000_000_000_000_000;
        for garbage in [
            "%%%".to_string(),
            "bm90IGpzb24".into(),
            "WzEsMl0".into(),
            forged(year_minus_5000, "u"),
            forged(1_764_000_000_000_000, "a\0b"),
            forged(1_764_000_000_000_000, &"x".repeat(300)),
        ] {
            assert_eq!(
                Page::from_request(5, &garbage).unwrap_err().message,
                "cursor is not one iamd gave out"
            );
        }
    }

    #[test]
    fn cut_keeps_the_page_and_names_the_next() {
        let page = Page { after: None, limit: Some(2) };
        let (rows, next) = page.cut(vec![1, 2, 3], key);
        assert_eq!(rows, [1, 2]);
        assert_eq!(decode(&next).unwrap(), key(&2));
        let (rows, next) = page.cut(vec![1, 2], key);
        assert_eq!((rows, next), (vec![1, 2], String::new()));
        let (rows, next) = Page::default().cut(vec![1, 2, 3], key);
        assert_eq!((rows, next), (vec![1, 2, 3], String::new()));
    }
}
