//! What of an event an auditor may see. Payloads carry password hashes (argon2id encodings)
//! and API-key digests: they are what lets read tables be rebuilt, but they are never shown by
//! the audit log or served by the feed. [`public_payload`] drops them and names what it
//! dropped, so a reader can tell "changed, value withheld" from "absent".

use serde_json::{Map, Value};

/// Payload fields that hold a secret's hash; never shown outside the log itself.
pub const WITHHELD_FIELDS: [&str; 2] = ["password_hash", "key_hash"];

/// The payload without its withheld fields, and the names of the fields it withheld
/// (present and non-null in the stored payload).
pub fn public_payload(payload: &Value) -> (Value, Vec<&'static str>) {
    let Some(object) = payload.as_object() else {
        return (payload.clone(), Vec::new());
    };
    let mut shown = Map::with_capacity(object.len());
    let mut withheld = Vec::new();
    for (field, value) in object {
        match WITHHELD_FIELDS.iter().find(|w| **w == field) {
            Some(name) => {
                if !value.is_null() {
                    withheld.push(*name);
                }
            }
            None => {
                shown.insert(field.clone(), value.clone());
            }
        }
    }
    (Value::Object(shown), withheld)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hashes_are_dropped_and_named_and_the_rest_is_kept() {
        let (shown, withheld) = public_payload(&json!({
            "user_id": "u", "username": "alice", "password_hash": "$argon2id$v=19$…"
        }));
        assert_eq!(shown, json!({"user_id": "u", "username": "alice"}));
        assert_eq!(withheld, vec!["password_hash"]);
        let (shown, withheld) = public_payload(&json!({"key_id": "k", "key_hash": "ab12", "prefix": "tg_x"}));
        assert_eq!(shown, json!({"key_id": "k", "prefix": "tg_x"}));
        assert_eq!(withheld, vec!["key_hash"]);
    }

    #[test]
    fn a_null_hash_is_dropped_without_being_named() {
        let (shown, withheld) = public_payload(&json!({"user_id": "u", "password_hash": null}));
        assert_eq!(shown, json!({"user_id": "u"}));
        assert!(withheld.is_empty());
    }
}
