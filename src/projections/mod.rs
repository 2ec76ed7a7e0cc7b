//! Inline projections: reducers that turn one event into the typed writes ([`write`]) that
//! keep the read tables (`workspaces`, `users`, `api_keys`) and the username reservations
//! current. They are pure (tested without a database); the event store runs their writes in
//! the append transaction, so a command's effects are visible the moment it returns, and a
//! rebuild runs the same writes many rows at a time. Each table has exactly one module that
//! writes it.

mod api_keys;
pub mod key_cache;
mod signing_keys;
pub mod uniqueness;
mod users;
mod workspaces;
pub mod write;

use crate::events::Event;
use chrono::{DateTime, Utc};
pub use write::{Param, Write};

/// The context a reducer may need beyond the event itself.
pub struct Context<'a> {
    pub stream: &'a str,
    pub recorded_at: DateTime<Utc>,
}

impl Context<'_> {
    /// The workspace id of a `workspace:<id>` stream.
    pub fn workspace(&self) -> &str {
        crate::events::workspace_of(self.stream).unwrap_or_default()
    }
}

/// Every write every projection derives from `event`, in order.
pub fn writes(ctx: &Context<'_>, event: &Event) -> Vec<Write> {
    let mut out = read_table_writes(ctx, event);
    out.extend(signing_keys::reduce(ctx, event));
    out
}

/// The writes to the read tables only ([`READ_TABLES`]): [`writes`] without the
/// `signing_keys` retirement stamps, which update a table that is not rebuilt from the log.
/// What `iamd projections rebuild|verify` replay.
pub fn read_table_writes(ctx: &Context<'_>, event: &Event) -> Vec<Write> {
    let mut out = Vec::new();
    out.extend(workspaces::reduce(ctx, event));
    out.extend(users::reduce(ctx, event));
    out.extend(uniqueness::reduce(ctx, event));
    out.extend(api_keys::reduce(ctx, event));
    out
}

/// Names of the tables projections own: what a rebuild empties and refills.
pub const READ_TABLES: [&str; 4] = ["workspaces", "users", "api_keys", "unique_usernames"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::RevokeReason;

    fn ctx() -> Context<'static> {
        Context { stream: "workspace:acme", recorded_at: Utc::now() }
    }

    #[test]
    fn user_created_writes_the_user_and_reserves_the_name() {
        let e = Event::UserCreated {
            user_id: "u".into(),
            username: "Alice".into(),
            name: "".into(),
            email: "".into(),
            roles: vec![],
            enabled: true,
            must_change_password: false,
            password_hash: None,
            created: Utc::now(),
            self_registered: false,
            number: None,
        };
        let sql: Vec<_> = writes(&ctx(), &e).into_iter().map(|w| w.shape.sql()).collect();
        assert_eq!(sql.len(), 2);
        assert!(sql[0].starts_with("INSERT INTO users"));
        assert!(sql[1].starts_with("INSERT INTO unique_usernames"));
    }

    #[test]
    fn a_rename_moves_the_reservation_and_other_changes_do_not() {
        let rename = Event::UserChanged {
            user_id: "u".into(),
            username: Some("bob".into()),
            name: None,
            email: None,
            roles: None,
            must_change_password: None,
        };
        let sql: Vec<_> = writes(&ctx(), &rename).into_iter().map(|w| w.shape.sql()).collect();
        // The change, the reservation moved (delete, insert), `updated` stamped.
        assert_eq!(sql.len(), 4);
        assert!(sql[2].starts_with("DELETE FROM unique_usernames"));
        let other = Event::UserChanged {
            user_id: "u".into(),
            username: None,
            name: Some("B".into()),
            email: None,
            roles: None,
            must_change_password: None,
        };
        assert_eq!(writes(&ctx(), &other).len(), 2, "the change and `updated`");
    }

    #[test]
    fn user_deleted_deletes_the_user_row_and_frees_the_name() {
        let e = Event::UserDeleted { user_id: "u".into(), username: "Alice".into(), reason: None };
        let sql: Vec<_> = writes(&ctx(), &e).into_iter().map(|w| w.shape.sql()).collect();
        assert_eq!(
            sql,
            vec!["DELETE FROM users WHERE id = $1", "DELETE FROM unique_usernames WHERE user_id = $1"]
        );
    }

    #[test]
    fn revocation_deletes_the_key_row_and_workspace_events_touch_one_table() {
        let e = Event::ApiKeyRevoked { key_id: "k".into(), reason: RevokeReason::Revoked };
        let s = writes(&ctx(), &e);
        assert_eq!(s.len(), 1);
        assert!(s[0].shape.sql().starts_with("DELETE FROM api_keys"));
        let s = writes(&ctx(), &Event::WorkspaceDisabled {});
        assert_eq!(s.len(), 1);
        assert!(s[0].shape.sql().starts_with("UPDATE workspaces"));
    }

    #[test]
    fn signing_key_creation_writes_no_read_table() {
        let e = Event::SigningKeyCreated {
            kid: "k".into(),
            public_key: "p".into(),
            created: Utc::now(),
            algorithm: Default::default(),
        };
        assert!(writes(&Context { stream: "system", recorded_at: Utc::now() }, &e).is_empty());
    }
}
