//! Wire types of the IAM service protocol (`IamRequest` → `IamResponse`), shared by every
//! adapter. Field names follow the seed spec (snake_case); every request field is optional on
//! input, `null` reads as empty, unknown fields are ignored, and the upstream aliases
//! (`default_workspace`) are accepted.
//!
//! Replies carry both spellings where the seed and TrustGraph's released code differ:
//! `resolved_workspace` beside `resolved_default_workspace`, and in user records `workspace`
//! beside `default_workspace`. TrustGraph's codec drops keys it does not know and defaults
//! missing ones, so a reply with only the seed's names reads there as an empty workspace.

mod error;
mod operation;
mod records;
mod request;
mod response;
pub mod time;

pub use error::{
    ErrorKind, IamError, AUTH_FAILED_MESSAGE, REQUEST_ID_REUSED_MESSAGE, REQUEST_IN_PROGRESS_MESSAGE,
};

pub use operation::Operation;
pub use records::*;
pub use request::*;
pub use response::IamResponse;

use serde::{Deserialize, Deserializer, Serialize};

/// Reads a string that may be `null` or absent as the empty string.
fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// Reads a number that may be `null` as zero.
fn nullable_number<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    Ok(Option::<u32>::deserialize(d)?.unwrap_or_default())
}

/// Reads a flag that may be `null` as false.
fn nullable_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or_default())
}

/// Reads a list that may be `null` as empty.
fn nullable_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_and_unknown_fields_read_as_empty() {
        let req: IamRequest = serde_json::from_str(
            r#"{"operation":"get-user","workspace":null,"user":null,"bogus":1,"user_id":"u"}"#,
        )
        .unwrap();
        assert_eq!(req.operation, "get-user");
        assert_eq!(req.workspace, "");
        assert!(req.user.is_none());
    }

    #[test]
    fn the_idempotency_input_is_every_field_but_the_id_and_the_relay_in_one_order() {
        let parse = |json: &str| serde_json::from_str::<IamRequest>(json).unwrap().idempotency_input();
        let base =
            parse(r#"{"operation":"create-user","workspace":"w","user":{"username":"a","password":"p1"}}"#);
        let reordered = parse(
            r#"{"user":{"password":"p1","username":"a"},"request_id":"r-2","client_ip":"10.0.0.9","workspace":"w","operation":"create-user"}"#,
        );
        assert_eq!(base, reordered, "the id, the client's address and key order do not matter");
        let other_password =
            parse(r#"{"operation":"create-user","workspace":"w","user":{"username":"a","password":"p2"}}"#);
        assert_ne!(base, other_password, "a secret is part of the request");
        let other_op =
            parse(r#"{"operation":"update-user","workspace":"w","user":{"username":"a","password":"p1"}}"#);
        assert_ne!(base, other_op);
        let disable = parse(r#"{"operation":"update-user","user":{"enabled":false}}"#);
        assert_ne!(disable, parse(r#"{"operation":"update-user","user":{}}"#), "false is not absent");
    }

    #[test]
    fn wrong_types_are_rejected() {
        assert!(serde_json::from_str::<IamRequest>(r#"{"operation":5}"#).is_err());
        assert!(serde_json::from_str::<IamRequest>(r#"{"user":{"roles":"admin"}}"#).is_err());
    }

    #[test]
    fn json_errors_never_echo_values() {
        let e = IamRequest::from_json(br#"{"password": 1234567890123}"#).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(!e.message.contains("1234567890123"), "{}", e.message);
        assert!(e.message.contains("wrong type"));
        assert!(IamRequest::from_json(b"{not json").unwrap_err().message.contains("not valid JSON"));
        assert!(IamRequest::from_json(b"{").unwrap_err().message.contains("ends before"));
        assert!(IamRequest::from_json(b"\xff\xfe").is_err());
    }

    #[test]
    fn the_target_workspace_is_workspace_else_the_record_id() {
        let r = IamRequest::from_json(br#"{"operation":"update-workspace","workspace_record":{"id":"w"}}"#)
            .unwrap();
        assert_eq!(r.target_workspace(), "w");
        let r = IamRequest::from_json(br#"{"workspace":"a","workspace_record":{"id":"w"}}"#).unwrap();
        assert_eq!(r.target_workspace(), "a");
        assert_eq!(IamRequest::default().target_workspace(), "");
    }

    #[test]
    fn upstream_alias_default_workspace_is_accepted() {
        let u: UserInput = serde_json::from_str(r#"{"default_workspace":"acme"}"#).unwrap();
        assert_eq!(u.workspace, "acme");
        let r: UserRecord = serde_json::from_str(r#"{"id":"u","default_workspace":"acme"}"#).unwrap();
        assert_eq!(r.workspace, "acme");
        let r: UserRecord =
            serde_json::from_str(r#"{"id":"u","workspace":"acme","default_workspace":"acme","roles":null}"#)
                .unwrap();
        assert_eq!((r.workspace.as_str(), r.roles.len()), ("acme", 0));
    }

    #[test]
    fn replies_carry_both_spellings_of_the_workspace() {
        let user = UserRecord { id: "u".into(), workspace: "acme".into(), ..Default::default() };
        let v = serde_json::to_value(&user).unwrap();
        assert_eq!((&v["workspace"], &v["default_workspace"]), (&"acme".into(), &"acme".into()));
        assert_eq!(serde_json::from_value::<UserRecord>(v).unwrap(), user);
        let r = IamResponse::resolved("u".into(), "acme".into(), vec!["reader".into()]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["resolved_workspace"], "acme");
        assert_eq!(v["resolved_default_workspace"], "acme");
        assert_eq!(serde_json::from_value::<IamResponse>(v).unwrap(), r);
    }

    #[test]
    fn every_operation_round_trips_and_unknown_is_invalid() {
        for op in Operation::ALL {
            assert_eq!(Operation::parse(op.as_str()).unwrap(), op);
        }
        let err = Operation::parse("drop-tables").unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
        assert_eq!(Operation::parse("").unwrap_err().kind, ErrorKind::InvalidArgument);
    }

    #[test]
    fn empty_fields_are_not_serialised_and_errors_use_type() {
        let r = IamResponse::error(IamError::auth_failed());
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"error":{"type":"auth-failed","message":"authentication failed"}}"#
        );
    }

    #[test]
    fn without_secrets_strips_one_time_values() {
        let r = IamResponse {
            api_key_plaintext: "tg_x".into(),
            temporary_password: "p".into(),
            bootstrap_admin_api_key: "tg_y".into(),
            bootstrap_admin_user_id: "u".into(),
            ..Default::default()
        };
        let s = r.without_secrets();
        assert!(s.api_key_plaintext.is_empty() && s.temporary_password.is_empty());
        assert!(s.bootstrap_admin_api_key.is_empty());
        assert_eq!(s.bootstrap_admin_user_id, "u");
    }
}
