//! Given/when/then tests of the workspace aggregate: every command's success and every refusal
//! of `decide`, the state `apply` folds from the events, what each command answers with, and
//! replay.

use super::{
    answer, apply, decide, Answer, ImportedUser, ProfileEdit, WorkspaceCommand as C, WorkspaceState,
};
use crate::events::{Event, RevokeReason};
use crate::protocol::{ErrorKind, IamError, AUTH_FAILED_MESSAGE};
use chrono::{DateTime, Duration, TimeZone, Utc};

const WS: &str = "acme";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
}

/// The state of workspace `acme` after `events`.
fn given(events: &[Event]) -> WorkspaceState {
    let mut state = WorkspaceState::new(WS);
    events.iter().for_each(|e| apply(&mut state, e));
    state
}

fn when(state: &WorkspaceState, command: &C) -> Result<Vec<Event>, IamError> {
    decide(state, command, now())
}

/// The error `command` is refused with; panics when it is accepted.
fn refused(state: &WorkspaceState, command: &C) -> IamError {
    match when(state, command) {
        Ok(events) => panic!("{command:?} was accepted with {events:?}"),
        Err(e) => e,
    }
}

/// `state` with `events` applied.
fn after(state: &WorkspaceState, events: &[Event]) -> WorkspaceState {
    let mut next = state.clone();
    events.iter().for_each(|e| apply(&mut next, e));
    next
}

// ---- events a test starts from ----

fn workspace_created() -> Event {
    Event::WorkspaceCreated { workspace_id: WS.into(), name: "Acme".into(), created: now() }
}

/// An enabled reader named `User <username>` with password hash `hash-<user_id>`.
fn user_created(user_id: &str, username: &str) -> Event {
    Event::UserCreated {
        user_id: user_id.into(),
        username: username.into(),
        name: format!("User {username}"),
        email: format!("{username}@example.com"),
        roles: vec!["reader".into()],
        enabled: true,
        must_change_password: false,
        password_hash: Some(format!("hash-{user_id}")),
        created: now(),
        self_registered: false,
        number: None,
    }
}

fn user_disabled(user_id: &str) -> Event {
    Event::UserDisabled { user_id: user_id.into() }
}

fn key_created(key_id: &str, user_id: &str, name: &str) -> Event {
    Event::ApiKeyCreated {
        key_id: key_id.into(),
        user_id: user_id.into(),
        name: name.into(),
        prefix: "tg_k".into(),
        key_hash: format!("sha-{key_id}"),
        expires: None,
        created: now(),
    }
}

fn key_revoked(key_id: &str, reason: RevokeReason) -> Event {
    Event::ApiKeyRevoked { key_id: key_id.into(), reason }
}

// ---- commands ----

/// create-user fields a test may vary; the default is a valid, enabled reader `bob`.
struct NewUser<'a> {
    username: &'a str,
    name: &'a str,
    email: &'a str,
    roles: &'a [&'a str],
    enabled: bool,
    must_change_password: bool,
}

impl Default for NewUser<'static> {
    fn default() -> Self {
        NewUser {
            username: "bob",
            name: "Bob",
            email: "bob@example.com",
            roles: &["reader"],
            enabled: true,
            must_change_password: false,
        }
    }
}

fn create_user(user_id: &str, u: NewUser) -> C {
    C::CreateUser {
        user_id: user_id.into(),
        username: u.username.into(),
        name: u.name.into(),
        email: u.email.into(),
        roles: u.roles.iter().map(|r| r.to_string()).collect(),
        enabled: u.enabled,
        must_change_password: u.must_change_password,
        password_hash: format!("hash-{user_id}"),
        profile: Default::default(),
        self_registered: false,
        number: None,
    }
}

/// update-user fields; the default changes nothing.
#[derive(Default)]
struct UserEdit<'a> {
    username: Option<&'a str>,
    name: Option<&'a str>,
    email: Option<&'a str>,
    roles: Option<&'a [&'a str]>,
    enabled: Option<bool>,
    must_change_password: Option<bool>,
    password_given: bool,
}

fn update_user(user_id: &str, e: UserEdit) -> C {
    C::UpdateUser {
        user_id: user_id.into(),
        username: e.username.map(Into::into),
        name: e.name.map(Into::into),
        email: e.email.map(Into::into),
        roles: e.roles.map(|r| r.iter().map(|r| r.to_string()).collect()),
        enabled: e.enabled,
        must_change_password: e.must_change_password,
        password_given: e.password_given,
        profile: Default::default(),
    }
}

fn create_key(key_id: &str, user_id: &str, name: &str, expires: Option<DateTime<Utc>>) -> C {
    C::CreateApiKey {
        key_id: key_id.into(),
        user_id: user_id.into(),
        name: name.into(),
        prefix: "tg_k".into(),
        key_hash: format!("sha-{key_id}"),
        expires,
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

// ---- create-workspace ----

#[test]
fn create_workspace_records_it_and_replies_with_its_record() {
    let state = given(&[]);
    let cmd = C::CreateWorkspace { name: "Acme".into() };
    let events = when(&state, &cmd).unwrap();
    assert_eq!(events, vec![workspace_created()]);
    let next = after(&state, &events);
    assert_eq!((next.id.as_str(), next.name.as_str(), next.enabled), (WS, "Acme", true));
    assert_eq!(answer(&cmd), Answer::Workspace);
}

#[test]
fn create_workspace_name_defaults_to_the_id() {
    let events = when(&given(&[]), &C::CreateWorkspace { name: String::new() }).unwrap();
    assert_eq!(
        events,
        vec![Event::WorkspaceCreated { workspace_id: WS.into(), name: WS.into(), created: now() }]
    );
}

#[test]
fn create_workspace_refuses_an_existing_id_as_duplicate() {
    let cmd = C::CreateWorkspace { name: "Again".into() };
    assert_eq!(refused(&given(&[workspace_created()]), &cmd).kind, ErrorKind::Duplicate);
    let disabled = given(&[workspace_created(), Event::WorkspaceDisabled {}]);
    assert_eq!(refused(&disabled, &cmd).kind, ErrorKind::Duplicate);
}

#[test]
fn create_workspace_refuses_an_invalid_id() {
    let too_long = "a".repeat(65);
    for id in ["", "_system", "-x", ".x", "a b", "a/b", "é", too_long.as_str()] {
        let err = refused(&WorkspaceState::new(id), &C::CreateWorkspace { name: "X".into() });
        assert_eq!(err.kind, ErrorKind::InvalidArgument, "id {id:?}");
    }
    let longest = "a".repeat(64);
    assert!(when(&WorkspaceState::new(&longest), &C::CreateWorkspace { name: "X".into() }).is_ok());
}

#[test]
fn create_workspace_refuses_a_name_longer_than_200_characters() {
    let err = refused(&given(&[]), &C::CreateWorkspace { name: "n".repeat(201) });
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert!(when(&given(&[]), &C::CreateWorkspace { name: "n".repeat(200) }).is_ok());
}

#[test]
fn create_workspace_refuses_control_characters_in_the_name() {
    let err = refused(&given(&[]), &C::CreateWorkspace { name: "Ac\nme".into() });
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
}

// ---- update-workspace ----

#[test]
fn update_workspace_renames() {
    let state = given(&[workspace_created()]);
    let cmd = C::UpdateWorkspace { name: Some("Acme Corp".into()), enabled: None };
    let events = when(&state, &cmd).unwrap();
    assert_eq!(events, vec![Event::WorkspaceRenamed { name: "Acme Corp".into() }]);
    assert_eq!(after(&state, &events).name, "Acme Corp");
    assert_eq!(answer(&cmd), Answer::Workspace);
}

#[test]
fn update_workspace_is_a_no_op_when_nothing_changes() {
    let state = given(&[workspace_created()]);
    for cmd in [
        C::UpdateWorkspace { name: None, enabled: None },
        C::UpdateWorkspace { name: Some(String::new()), enabled: None },
        C::UpdateWorkspace { name: Some("Acme".into()), enabled: Some(true) },
    ] {
        assert_eq!(when(&state, &cmd).unwrap(), vec![], "{cmd:?}");
        assert_eq!(answer(&cmd), Answer::Workspace, "the workspace as it is");
    }
}

#[test]
fn update_workspace_enables_a_disabled_workspace() {
    let state = given(&[workspace_created(), Event::WorkspaceDisabled {}]);
    let cmd = C::UpdateWorkspace { name: None, enabled: Some(true) };
    let events = when(&state, &cmd).unwrap();
    assert_eq!(events, vec![Event::WorkspaceEnabled {}]);
    assert!(after(&state, &events).enabled);
    assert_eq!(answer(&cmd), Answer::Workspace);
}

#[test]
fn update_workspace_may_enable_and_rename_in_one_request() {
    let state = given(&[workspace_created(), Event::WorkspaceDisabled {}]);
    let cmd = C::UpdateWorkspace { name: Some("Acme Corp".into()), enabled: Some(true) };
    assert_eq!(
        when(&state, &cmd).unwrap(),
        vec![Event::WorkspaceEnabled {}, Event::WorkspaceRenamed { name: "Acme Corp".into() }]
    );
}

#[test]
fn update_workspace_with_enabled_false_cascades_like_disable_workspace() {
    let state = given(&[
        workspace_created(),
        user_created("u1", "alice"),
        user_created("u2", "bob"),
        key_created("k1", "u1", "laptop"),
        key_created("k2", "u2", "ci"),
    ]);
    let events = when(&state, &C::UpdateWorkspace { name: None, enabled: Some(false) }).unwrap();
    assert_eq!(
        events,
        vec![
            Event::WorkspaceDisabled {},
            user_disabled("u1"),
            user_disabled("u2"),
            key_revoked("k1", RevokeReason::WorkspaceDisabled),
            key_revoked("k2", RevokeReason::WorkspaceDisabled),
        ]
    );
    assert_eq!(events, when(&state, &C::DisableWorkspace).unwrap());
}

#[test]
fn update_workspace_refuses_a_rename_of_a_disabled_workspace() {
    let state = given(&[workspace_created(), Event::WorkspaceDisabled {}]);
    let err = refused(&state, &C::UpdateWorkspace { name: Some("Acme Corp".into()), enabled: None });
    assert_eq!(err.kind, ErrorKind::Disabled);
}

#[test]
fn update_workspace_refuses_a_name_longer_than_200_characters() {
    let state = given(&[workspace_created()]);
    let err = refused(&state, &C::UpdateWorkspace { name: Some("n".repeat(201)), enabled: None });
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
}

#[test]
fn update_workspace_of_a_missing_workspace_is_not_found() {
    let err = refused(&given(&[]), &C::UpdateWorkspace { name: Some("X".into()), enabled: None });
    assert_eq!(err.kind, ErrorKind::NotFound);
}

#[test]
fn update_workspace_with_a_new_name_and_enabled_false_renames_and_disables() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    let cmd = C::UpdateWorkspace { name: Some("Acme Archive".into()), enabled: Some(false) };
    let events = when(&state, &cmd).unwrap();
    assert!(events.contains(&Event::WorkspaceRenamed { name: "Acme Archive".into() }), "{events:?}");
    let next = after(&state, &events);
    assert!(!next.enabled);
    assert!(!next.users["u1"].enabled);
    assert_eq!(next.name, "Acme Archive");
    assert_eq!(answer(&cmd), Answer::Workspace);
}

#[test]
fn update_workspace_with_enabled_false_on_a_disabled_workspace_is_a_no_op() {
    let state = given(&[workspace_created(), Event::WorkspaceDisabled {}]);
    for name in [None, Some("Acme".to_string())] {
        let cmd = C::UpdateWorkspace { name, enabled: Some(false) };
        assert_eq!(when(&state, &cmd).unwrap(), vec![], "{cmd:?}");
    }
}

// ---- disable-workspace ----

#[test]
fn disable_workspace_disables_every_enabled_user_and_revokes_every_active_key() {
    let state = given(&[
        workspace_created(),
        user_created("u1", "alice"),
        user_created("u2", "bob"),
        user_created("u3", "carol"),
        user_disabled("u3"),
        key_created("k1", "u1", "laptop"),
        key_created("k2", "u1", "old"),
        key_revoked("k2", RevokeReason::Revoked),
        key_created("k3", "u2", "ci"),
    ]);
    let events = when(&state, &C::DisableWorkspace).unwrap();
    assert_eq!(
        events,
        vec![
            Event::WorkspaceDisabled {},
            user_disabled("u1"),
            user_disabled("u2"),
            key_revoked("k1", RevokeReason::WorkspaceDisabled),
            key_revoked("k3", RevokeReason::WorkspaceDisabled),
        ]
    );
    let next = after(&state, &events);
    assert!(!next.enabled);
    assert!(next.users.values().all(|u| !u.enabled));
    assert!(next.keys.values().all(|k| k.revoked));
    assert_eq!(answer(&C::DisableWorkspace), Answer::Nothing);
}

#[test]
fn disable_workspace_a_second_time_is_a_no_op() {
    let state = given(&[workspace_created(), user_created("u1", "alice"), key_created("k1", "u1", "laptop")]);
    let next = after(&state, &when(&state, &C::DisableWorkspace).unwrap());
    assert_eq!(when(&next, &C::DisableWorkspace).unwrap(), vec![]);
}

#[test]
fn disable_workspace_of_a_missing_workspace_is_not_found() {
    assert_eq!(refused(&given(&[]), &C::DisableWorkspace).kind, ErrorKind::NotFound);
}

// ---- create-user ----

#[test]
fn create_user_records_the_user_and_replies_with_its_record() {
    let state = given(&[workspace_created()]);
    let cmd = create_user(
        "u9",
        NewUser { roles: &["writer", "admin"], must_change_password: true, ..NewUser::default() },
    );
    let events = when(&state, &cmd).unwrap();
    assert_eq!(
        events,
        vec![Event::UserCreated {
            user_id: "u9".into(),
            username: "bob".into(),
            name: "Bob".into(),
            email: "bob@example.com".into(),
            roles: strings(&["writer", "admin"]),
            enabled: true,
            must_change_password: true,
            password_hash: Some("hash-u9".into()),
            created: now(),
            self_registered: false,
            number: None,
        }]
    );
    let next = after(&state, &events);
    assert_eq!(next.users["u9"].account_version, 1);
    assert_eq!(answer(&cmd), Answer::User("u9".into()));
}

#[test]
fn create_user_name_defaults_to_the_username() {
    let state = given(&[workspace_created()]);
    let events = when(&state, &create_user("u9", NewUser { name: "", ..NewUser::default() })).unwrap();
    assert!(matches!(&events[..], [Event::UserCreated { name, .. }] if name == "bob"), "{events:?}");
}

#[test]
fn create_user_deduplicates_roles_keeping_their_order() {
    let state = given(&[workspace_created()]);
    let cmd = create_user("u9", NewUser { roles: &["writer", "admin", "writer"], ..NewUser::default() });
    let events = when(&state, &cmd).unwrap();
    assert!(
        matches!(&events[..], [Event::UserCreated { roles, .. }] if *roles == strings(&["writer", "admin"])),
        "{events:?}"
    );
}

#[test]
fn create_user_refuses_an_unknown_role() {
    let state = given(&[workspace_created()]);
    let err =
        refused(&state, &create_user("u9", NewUser { roles: &["reader", "root"], ..NewUser::default() }));
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
}

#[test]
fn create_user_refuses_a_bad_username() {
    let state = given(&[workspace_created()]);
    let too_long = "u".repeat(65);
    for username in ["", "a/b", "with space", "tab\t", too_long.as_str()] {
        let err = refused(&state, &create_user("u9", NewUser { username, ..NewUser::default() }));
        assert_eq!(err.kind, ErrorKind::InvalidArgument, "username {username:?}");
    }
}

#[test]
fn create_user_refuses_a_bad_email() {
    let state = given(&[workspace_created()]);
    let too_long = format!("{}@example.com", "e".repeat(250));
    for email in ["nope", "a b@example.com", too_long.as_str()] {
        let err = refused(&state, &create_user("u9", NewUser { email, ..NewUser::default() }));
        assert_eq!(err.kind, ErrorKind::InvalidArgument, "email {email:?}");
    }
}

#[test]
fn create_user_accepts_an_empty_email() {
    let state = given(&[workspace_created()]);
    assert!(when(&state, &create_user("u9", NewUser { email: "", ..NewUser::default() })).is_ok());
}

#[test]
fn create_user_refuses_a_name_longer_than_200_characters() {
    let state = given(&[workspace_created()]);
    let name = "n".repeat(201);
    let err = refused(&state, &create_user("u9", NewUser { name: &name, ..NewUser::default() }));
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
}

#[test]
fn create_user_refuses_a_username_taken_case_insensitively() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    let err = refused(&state, &create_user("u9", NewUser { username: "ALICE", ..NewUser::default() }));
    assert_eq!(err.kind, ErrorKind::Duplicate);
}

#[test]
fn create_user_in_a_missing_workspace_is_not_found() {
    let err = refused(&given(&[]), &create_user("u9", NewUser::default()));
    assert_eq!(err.kind, ErrorKind::NotFound);
}

#[test]
fn create_user_in_a_disabled_workspace_is_refused_as_disabled() {
    let state = given(&[workspace_created(), Event::WorkspaceDisabled {}]);
    assert_eq!(refused(&state, &create_user("u9", NewUser::default())).kind, ErrorKind::Disabled);
}

// ---- update-user ----

#[test]
fn update_user_refuses_a_password_as_invalid_argument() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    let err = refused(&state, &update_user("u1", UserEdit { password_given: true, ..UserEdit::default() }));
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
}

#[test]
fn update_user_records_only_the_changed_fields() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    let cmd = update_user(
        "u1",
        UserEdit {
            username: Some("alice"),
            name: Some("Alice B"),
            email: Some("alice@example.com"),
            roles: Some(&["reader"]),
            must_change_password: Some(false),
            enabled: Some(true),
            ..UserEdit::default()
        },
    );
    let events = when(&state, &cmd).unwrap();
    assert_eq!(
        events,
        vec![Event::UserChanged {
            user_id: "u1".into(),
            username: None,
            name: Some("Alice B".into()),
            email: None,
            roles: None,
            must_change_password: None,
        }]
    );
    let next = after(&state, &events);
    let u = &next.users["u1"];
    assert_eq!((u.name.as_str(), u.email.as_str()), ("Alice B", "alice@example.com"));
}

#[test]
fn update_user_changes_every_field_given() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    let cmd = update_user(
        "u1",
        UserEdit {
            username: Some("alice.b"),
            name: Some("Alice B"),
            email: Some("ab@example.com"),
            roles: Some(&["admin", "writer", "admin"]),
            must_change_password: Some(true),
            ..UserEdit::default()
        },
    );
    let events = when(&state, &cmd).unwrap();
    assert_eq!(
        events,
        vec![
            Event::UserChanged {
                user_id: "u1".into(),
                username: Some("alice.b".into()),
                name: Some("Alice B".into()),
                email: Some("ab@example.com".into()),
                roles: Some(strings(&["admin", "writer"])),
                must_change_password: Some(true),
            },
            // A new email and the admin role each end every session (docs/accounts.md).
            Event::UserSessionsEnded {
                user_id: "u1".into(),
                reason: crate::events::SessionsEndReason::EmailChanged
            },
            Event::UserSessionsEnded {
                user_id: "u1".into(),
                reason: crate::events::SessionsEndReason::AdminRoleChanged
            }
        ]
    );
    let next = after(&state, &events);
    let u = &next.users["u1"];
    assert_eq!(
        (u.username.as_str(), u.name.as_str(), u.email.as_str(), &u.roles, u.enabled, u.must_change_password),
        ("alice.b", "Alice B", "ab@example.com", &strings(&["admin", "writer"]), true, true)
    );
    assert_eq!(answer(&cmd), Answer::User("u1".into()));
}

#[test]
fn update_user_records_no_events_when_nothing_changes() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    for edit in [
        UserEdit::default(),
        UserEdit { username: Some(""), name: Some(""), ..UserEdit::default() },
        UserEdit {
            username: Some("alice"),
            name: Some("User alice"),
            email: Some("alice@example.com"),
            roles: Some(&["reader", "reader"]),
            enabled: Some(true),
            must_change_password: Some(false),
            password_given: false,
        },
    ] {
        assert_eq!(when(&state, &update_user("u1", edit)).unwrap(), vec![]);
    }
}

#[test]
fn update_user_may_change_the_case_of_its_own_username() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    let events =
        when(&state, &update_user("u1", UserEdit { username: Some("Alice"), ..UserEdit::default() }))
            .unwrap();
    assert!(
        matches!(&events[..], [Event::UserChanged { username: Some(u), .. }] if u == "Alice"),
        "{events:?}"
    );
}

#[test]
fn update_user_without_enabled_does_not_re_enable_a_disabled_user() {
    let state = given(&[workspace_created(), user_created("u1", "alice"), user_disabled("u1")]);
    let cmd = update_user("u1", UserEdit { name: Some("Alice B"), ..UserEdit::default() });
    let events = when(&state, &cmd).unwrap();
    assert!(matches!(&events[..], [Event::UserChanged { .. }]), "{events:?}");
    let next = after(&state, &events);
    assert!(!next.users["u1"].enabled);
    assert_eq!(answer(&cmd), Answer::User("u1".into()));
}

#[test]
fn update_user_with_enabled_false_disables_and_revokes_the_users_active_keys() {
    let state = given(&[
        workspace_created(),
        user_created("u1", "alice"),
        user_created("u2", "bob"),
        key_created("k1", "u1", "laptop"),
        key_created("k2", "u1", "old"),
        key_revoked("k2", RevokeReason::Revoked),
        key_created("k3", "u2", "ci"),
    ]);
    let cmd = update_user("u1", UserEdit { enabled: Some(false), ..UserEdit::default() });
    let events = when(&state, &cmd).unwrap();
    assert_eq!(events, vec![user_disabled("u1"), key_revoked("k1", RevokeReason::UserDisabled)]);
    let next = after(&state, &events);
    assert_eq!(answer(&cmd), Answer::User("u1".into()));
    assert!(!next.keys["k3"].revoked);
}

#[test]
fn update_user_with_enabled_true_re_enables_a_disabled_user() {
    let state = given(&[workspace_created(), user_created("u1", "alice"), user_disabled("u1")]);
    let cmd = update_user("u1", UserEdit { enabled: Some(true), ..UserEdit::default() });
    let events = when(&state, &cmd).unwrap();
    assert_eq!(events, vec![Event::UserEnabled { user_id: "u1".into() }]);
    assert!(after(&state, &events).users["u1"].enabled);
    assert_eq!(answer(&cmd), Answer::User("u1".into()));
}

#[test]
fn update_user_refuses_renaming_to_a_taken_username_as_duplicate() {
    let state = given(&[workspace_created(), user_created("u1", "alice"), user_created("u2", "bob")]);
    let err = refused(&state, &update_user("u1", UserEdit { username: Some("BOB"), ..UserEdit::default() }));
    assert_eq!(err.kind, ErrorKind::Duplicate);
}

#[test]
fn update_user_refuses_invalid_fields() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    let long_name = "n".repeat(201);
    for edit in [
        UserEdit { username: Some("a/b"), ..UserEdit::default() },
        UserEdit { name: Some(&long_name), ..UserEdit::default() },
        UserEdit { email: Some("nope"), ..UserEdit::default() },
        UserEdit { roles: Some(&["root"]), ..UserEdit::default() },
    ] {
        let cmd = update_user("u1", edit);
        assert_eq!(refused(&state, &cmd).kind, ErrorKind::InvalidArgument, "{cmd:?}");
    }
}

#[test]
fn update_user_of_an_unknown_user_is_not_found() {
    let state = given(&[workspace_created()]);
    let err = refused(&state, &update_user("nobody", UserEdit { name: Some("X"), ..UserEdit::default() }));
    assert_eq!(err.kind, ErrorKind::NotFound);
}

#[test]
fn update_user_requires_a_user_id() {
    let state = given(&[workspace_created()]);
    let err = refused(&state, &update_user("", UserEdit { name: Some("X"), ..UserEdit::default() }));
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
}

#[test]
fn update_user_in_a_missing_workspace_is_not_found() {
    let err = refused(&given(&[]), &update_user("u1", UserEdit { name: Some("X"), ..UserEdit::default() }));
    assert_eq!(err.kind, ErrorKind::NotFound);
}

#[test]
fn update_user_in_a_disabled_workspace_is_refused_as_disabled() {
    // The workspace alone is disabled, so only its rule can refuse.
    let state = given(&[workspace_created(), user_created("u1", "alice"), Event::WorkspaceDisabled {}]);
    let err = refused(&state, &update_user("u1", UserEdit { name: Some("X"), ..UserEdit::default() }));
    assert_eq!(err.kind, ErrorKind::Disabled);
}

// ---- disable-user ----

#[test]
fn disable_user_revokes_only_that_users_active_keys() {
    let state = given(&[
        workspace_created(),
        user_created("u1", "alice"),
        user_created("u2", "bob"),
        key_created("k1", "u1", "laptop"),
        key_created("k2", "u1", "old"),
        key_revoked("k2", RevokeReason::Revoked),
        key_created("k3", "u2", "ci"),
        key_created("k4", "u1", "phone"),
    ]);
    let cmd = C::DisableUser { user_id: "u1".into() };
    let events = when(&state, &cmd).unwrap();
    assert_eq!(
        events,
        vec![
            user_disabled("u1"),
            key_revoked("k1", RevokeReason::UserDisabled),
            key_revoked("k4", RevokeReason::UserDisabled),
        ]
    );
    let next = after(&state, &events);
    assert!(!next.users["u1"].enabled);
    assert!(next.users["u2"].enabled);
    assert!(!next.keys["k3"].revoked);
    assert_eq!(answer(&cmd), Answer::Nothing);
}

#[test]
fn disable_user_a_second_time_is_a_no_op() {
    let state = given(&[workspace_created(), user_created("u1", "alice"), user_disabled("u1")]);
    assert_eq!(when(&state, &C::DisableUser { user_id: "u1".into() }).unwrap(), vec![]);
}

#[test]
fn disable_user_of_an_unknown_user_is_not_found() {
    let state = given(&[workspace_created()]);
    assert_eq!(refused(&state, &C::DisableUser { user_id: "nobody".into() }).kind, ErrorKind::NotFound);
}

#[test]
fn disable_user_requires_a_user_id() {
    let state = given(&[workspace_created()]);
    assert_eq!(refused(&state, &C::DisableUser { user_id: String::new() }).kind, ErrorKind::InvalidArgument);
}

#[test]
fn disable_user_in_a_missing_workspace_is_not_found() {
    assert_eq!(refused(&given(&[]), &C::DisableUser { user_id: "u1".into() }).kind, ErrorKind::NotFound);
}

// ---- enable-user ----

#[test]
fn enable_user_enables_a_disabled_user_and_replies_with_its_record() {
    let state = given(&[workspace_created(), user_created("u1", "alice"), user_disabled("u1")]);
    let cmd = C::EnableUser { user_id: "u1".into() };
    let events = when(&state, &cmd).unwrap();
    assert_eq!(events, vec![Event::UserEnabled { user_id: "u1".into() }]);
    let next = after(&state, &events);
    assert!(next.users["u1"].enabled);
    assert_eq!(answer(&cmd), Answer::User("u1".into()));
}

#[test]
fn enable_user_of_an_enabled_user_is_a_no_op() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    let cmd = C::EnableUser { user_id: "u1".into() };
    assert_eq!(when(&state, &cmd).unwrap(), vec![]);
    assert!(state.users["u1"].enabled);
    assert_eq!(answer(&cmd), Answer::User("u1".into()), "the user as it is");
}

#[test]
fn enable_user_keeps_the_keys_revoked_by_the_disable() {
    let state = given(&[
        workspace_created(),
        user_created("u1", "alice"),
        key_created("k1", "u1", "laptop"),
        user_disabled("u1"),
        key_revoked("k1", RevokeReason::UserDisabled),
    ]);
    let events = when(&state, &C::EnableUser { user_id: "u1".into() }).unwrap();
    assert_eq!(events, vec![Event::UserEnabled { user_id: "u1".into() }]);
    let next = after(&state, &events);
    assert!(next.keys["k1"].revoked);
    assert_eq!(next.active_keys_of("u1").count(), 0);
}

#[test]
fn enable_user_of_an_unknown_user_is_not_found() {
    let state = given(&[workspace_created()]);
    assert_eq!(refused(&state, &C::EnableUser { user_id: "nobody".into() }).kind, ErrorKind::NotFound);
}

#[test]
fn enable_user_requires_a_user_id() {
    let state = given(&[workspace_created()]);
    assert_eq!(refused(&state, &C::EnableUser { user_id: String::new() }).kind, ErrorKind::InvalidArgument);
}

#[test]
fn enable_user_in_a_missing_workspace_is_not_found() {
    assert_eq!(refused(&given(&[]), &C::EnableUser { user_id: "u1".into() }).kind, ErrorKind::NotFound);
}

#[test]
fn enable_user_in_a_disabled_workspace_is_refused_as_disabled() {
    // The workspace-wide disable also disabled the user: enabling it alone is refused.
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    let state = after(&state, &when(&state, &C::DisableWorkspace).unwrap());
    let err = refused(&state, &C::EnableUser { user_id: "u1".into() });
    assert_eq!(err, IamError::disabled("workspace is disabled"));
}

// ---- delete-user ----

#[test]
fn delete_user_revokes_the_users_active_keys_then_records_the_deletion() {
    let state = given(&[
        workspace_created(),
        user_created("u1", "alice"),
        user_created("u2", "bob"),
        key_created("k1", "u1", "laptop"),
        key_created("k2", "u2", "ci"),
        key_created("k3", "u1", "phone"),
    ]);
    let cmd = C::DeleteUser { user_id: "u1".into() };
    let events = when(&state, &cmd).unwrap();
    assert_eq!(
        events,
        vec![
            key_revoked("k1", RevokeReason::UserDeleted),
            key_revoked("k3", RevokeReason::UserDeleted),
            Event::UserDeleted { user_id: "u1".into(), username: "alice".into(), reason: None },
        ]
    );
    let next = after(&state, &events);
    assert!(!next.users.contains_key("u1"));
    assert!(next.users.contains_key("u2"));
    assert!(next.keys["k1"].revoked && next.keys["k3"].revoked, "the keys stay as revoked history");
    assert!(!next.keys["k2"].revoked);
    assert_eq!(answer(&cmd), Answer::Nothing);
}

#[test]
fn delete_user_does_not_revoke_a_revoked_key_again() {
    let state = given(&[
        workspace_created(),
        user_created("u1", "alice"),
        key_created("k1", "u1", "laptop"),
        key_revoked("k1", RevokeReason::Revoked),
        key_created("k2", "u1", "phone"),
    ]);
    assert_eq!(
        when(&state, &C::DeleteUser { user_id: "u1".into() }).unwrap(),
        vec![
            key_revoked("k2", RevokeReason::UserDeleted),
            Event::UserDeleted { user_id: "u1".into(), username: "alice".into(), reason: None },
        ]
    );
}

#[test]
fn delete_user_of_an_unknown_user_is_not_found() {
    let state = given(&[workspace_created()]);
    assert_eq!(refused(&state, &C::DeleteUser { user_id: "nobody".into() }).kind, ErrorKind::NotFound);
}

#[test]
fn delete_user_requires_a_user_id() {
    let state = given(&[workspace_created()]);
    assert_eq!(refused(&state, &C::DeleteUser { user_id: String::new() }).kind, ErrorKind::InvalidArgument);
}

#[test]
fn delete_user_in_a_missing_workspace_is_not_found() {
    assert_eq!(refused(&given(&[]), &C::DeleteUser { user_id: "u1".into() }).kind, ErrorKind::NotFound);
}

#[test]
fn delete_user_is_allowed_in_a_disabled_workspace() {
    let state = given(&[workspace_created(), user_created("u1", "alice"), key_created("k1", "u1", "laptop")]);
    let state = after(&state, &when(&state, &C::DisableWorkspace).unwrap());
    let events = when(&state, &C::DeleteUser { user_id: "u1".into() }).unwrap();
    assert_eq!(
        events,
        vec![Event::UserDeleted { user_id: "u1".into(), username: "alice".into(), reason: None }]
    );
    assert!(after(&state, &events).users.is_empty());
}

#[test]
fn delete_user_frees_the_username_and_forgets_the_user_id() {
    let state = given(&[workspace_created(), user_created("u1", "alice"), user_disabled("u1")]);
    let state = after(&state, &when(&state, &C::DeleteUser { user_id: "u1".into() }).unwrap());
    let cmd = create_user("u2", NewUser { username: "ALICE", ..NewUser::default() });
    let events = when(&state, &cmd).unwrap();
    assert!(matches!(&events[..], [Event::UserCreated { user_id, .. }] if user_id == "u2"), "{events:?}");
    let state = after(&state, &events);
    for cmd in [
        update_user("u1", UserEdit { name: Some("X"), ..UserEdit::default() }),
        C::DisableUser { user_id: "u1".into() },
        C::EnableUser { user_id: "u1".into() },
        C::DeleteUser { user_id: "u1".into() },
        C::ResetPassword { user_id: "u1".into(), new_hash: "h".into() },
        create_key("k1", "u1", "laptop", None),
    ] {
        assert_eq!(refused(&state, &cmd).kind, ErrorKind::NotFound, "{cmd:?}");
    }
    assert_auth_failed(&state, &change_password("u1", "hash-u1"));
}

// ---- change-password ----

fn change_password(user_id: &str, verified_hash: &str) -> C {
    C::ChangePassword {
        user_id: user_id.into(),
        verified_hash: verified_hash.into(),
        new_hash: "hash-new".into(),
    }
}

/// Every change-password failure is the one auth-failed bucket with the one message.
fn assert_auth_failed(state: &WorkspaceState, command: &C) {
    let err = refused(state, command);
    assert_eq!(err, IamError::auth_failed());
    assert_eq!(err.message, AUTH_FAILED_MESSAGE);
}

#[test]
fn change_password_records_the_hash_clears_must_change_password_and_bumps_the_account_version() {
    let state = given(&[
        workspace_created(),
        user_created("u1", "alice"),
        Event::UserPasswordReset { user_id: "u1".into(), password_hash: "hash-temp".into() },
    ]);
    assert!(state.users["u1"].must_change_password);
    let cmd = change_password("u1", "hash-temp");
    let events = when(&state, &cmd).unwrap();
    assert_eq!(
        events,
        vec![Event::UserPasswordChanged { user_id: "u1".into(), password_hash: "hash-new".into() }]
    );
    let next = after(&state, &events);
    let u = &next.users["u1"];
    assert_eq!(u.password_hash.as_deref(), Some("hash-new"));
    assert!(!u.must_change_password);
    assert_eq!(u.account_version, state.users["u1"].account_version + 1);
    assert_eq!(answer(&cmd), Answer::Nothing);
}

#[test]
fn change_password_refuses_a_stale_verified_hash_as_auth_failed() {
    let state = given(&[
        workspace_created(),
        user_created("u1", "alice"),
        Event::UserPasswordReset { user_id: "u1".into(), password_hash: "hash-temp".into() },
    ]);
    assert_auth_failed(&state, &change_password("u1", "hash-u1"));
}

#[test]
fn change_password_of_an_unknown_user_is_auth_failed() {
    assert_auth_failed(&given(&[workspace_created()]), &change_password("nobody", "hash-nobody"));
}

#[test]
fn change_password_of_a_disabled_user_is_auth_failed() {
    let state = given(&[workspace_created(), user_created("u1", "alice"), user_disabled("u1")]);
    assert_auth_failed(&state, &change_password("u1", "hash-u1"));
}

#[test]
fn change_password_in_a_disabled_workspace_is_auth_failed() {
    // The workspace alone is disabled, so only its rule can refuse.
    let state = given(&[workspace_created(), user_created("u1", "alice"), Event::WorkspaceDisabled {}]);
    assert_auth_failed(&state, &change_password("u1", "hash-u1"));
}

#[test]
fn change_password_in_a_missing_workspace_is_auth_failed() {
    assert_auth_failed(&given(&[]), &change_password("u1", "hash-u1"));
}

#[test]
fn change_password_of_a_user_without_a_password_is_auth_failed() {
    let bootstrap_admin = Event::UserCreated {
        user_id: "u1".into(),
        username: "admin".into(),
        name: "Administrator".into(),
        email: String::new(),
        roles: strings(&["admin"]),
        enabled: true,
        must_change_password: false,
        password_hash: None,
        created: now(),
        self_registered: false,
        number: None,
    };
    let state = given(&[workspace_created(), bootstrap_admin]);
    assert_auth_failed(&state, &change_password("u1", ""));
}

// ---- reset-password ----

#[test]
fn reset_password_records_the_hash_and_sets_must_change_password() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    let cmd = C::ResetPassword { user_id: "u1".into(), new_hash: "hash-temp".into() };
    let events = when(&state, &cmd).unwrap();
    assert_eq!(
        events,
        vec![Event::UserPasswordReset { user_id: "u1".into(), password_hash: "hash-temp".into() }]
    );
    let next = after(&state, &events);
    let u = &next.users["u1"];
    assert_eq!(u.password_hash.as_deref(), Some("hash-temp"));
    assert!(u.must_change_password);
    assert_eq!(u.account_version, 2);
    assert_eq!(answer(&cmd), Answer::Nothing);
}

#[test]
fn reset_password_of_a_disabled_user_is_refused_as_disabled() {
    let state = given(&[workspace_created(), user_created("u1", "alice"), user_disabled("u1")]);
    let err = refused(&state, &C::ResetPassword { user_id: "u1".into(), new_hash: "h".into() });
    assert_eq!(err.kind, ErrorKind::Disabled);
}

#[test]
fn reset_password_in_a_disabled_workspace_is_refused_as_disabled() {
    let state = given(&[workspace_created(), user_created("u1", "alice"), Event::WorkspaceDisabled {}]);
    let err = refused(&state, &C::ResetPassword { user_id: "u1".into(), new_hash: "h".into() });
    assert_eq!(err.kind, ErrorKind::Disabled);
}

#[test]
fn reset_password_of_an_unknown_user_is_not_found() {
    let state = given(&[workspace_created()]);
    let err = refused(&state, &C::ResetPassword { user_id: "nobody".into(), new_hash: "h".into() });
    assert_eq!(err.kind, ErrorKind::NotFound);
}

#[test]
fn reset_password_requires_a_user_id() {
    let state = given(&[workspace_created()]);
    let err = refused(&state, &C::ResetPassword { user_id: String::new(), new_hash: "h".into() });
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
}

#[test]
fn reset_password_in_a_missing_workspace_is_not_found() {
    let err = refused(&given(&[]), &C::ResetPassword { user_id: "u1".into(), new_hash: "h".into() });
    assert_eq!(err.kind, ErrorKind::NotFound);
}

// ---- create-api-key ----

#[test]
fn create_api_key_records_the_key_and_replies_with_its_record() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    let expires = now() + Duration::days(30);
    let cmd = create_key("k1", "u1", "laptop", Some(expires));
    let events = when(&state, &cmd).unwrap();
    assert_eq!(
        events,
        vec![Event::ApiKeyCreated {
            key_id: "k1".into(),
            user_id: "u1".into(),
            name: "laptop".into(),
            prefix: "tg_k".into(),
            key_hash: "sha-k1".into(),
            expires: Some(expires),
            created: now(),
        }]
    );
    assert_eq!(after(&state, &events).keys["k1"].expires, Some(expires));
    assert_eq!(answer(&cmd), Answer::Key("k1".into()));
}

#[test]
fn create_api_key_without_expiry_never_expires() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    let cmd = create_key("k1", "u1", "laptop", None);
    let events = when(&state, &cmd).unwrap();
    assert_eq!(events, vec![key_created("k1", "u1", "laptop")]);
    assert_eq!(after(&state, &events).keys["k1"].expires, None);
}

#[test]
fn create_api_key_requires_a_name() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    assert_eq!(refused(&state, &create_key("k1", "u1", "", None)).kind, ErrorKind::InvalidArgument);
}

#[test]
fn create_api_key_refuses_a_name_longer_than_100_characters() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    let err = refused(&state, &create_key("k1", "u1", &"k".repeat(101), None));
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert!(when(&state, &create_key("k1", "u1", &"k".repeat(100), None)).is_ok());
}

#[test]
fn create_api_key_refuses_control_characters_in_the_name() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    assert_eq!(
        refused(&state, &create_key("k1", "u1", "lap\u{7}top", None)).kind,
        ErrorKind::InvalidArgument
    );
}

#[test]
fn create_api_key_refuses_an_expiry_that_is_not_in_the_future() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    for expires in [now() - Duration::seconds(1), now()] {
        let err = refused(&state, &create_key("k1", "u1", "laptop", Some(expires)));
        assert_eq!(err.kind, ErrorKind::InvalidArgument, "expires {expires}");
    }
}

#[test]
fn create_api_key_for_a_disabled_user_is_refused_as_disabled() {
    let state = given(&[workspace_created(), user_created("u1", "alice"), user_disabled("u1")]);
    assert_eq!(refused(&state, &create_key("k1", "u1", "laptop", None)).kind, ErrorKind::Disabled);
}

#[test]
fn create_api_key_refuses_a_duplicate_active_name_for_the_same_user() {
    let state = given(&[workspace_created(), user_created("u1", "alice"), key_created("k1", "u1", "laptop")]);
    assert_eq!(refused(&state, &create_key("k2", "u1", "laptop", None)).kind, ErrorKind::Duplicate);
}

#[test]
fn create_api_key_may_reuse_the_name_of_a_revoked_key() {
    let state = given(&[
        workspace_created(),
        user_created("u1", "alice"),
        key_created("k1", "u1", "laptop"),
        key_revoked("k1", RevokeReason::Revoked),
    ]);
    assert_eq!(
        when(&state, &create_key("k2", "u1", "laptop", None)).unwrap(),
        vec![key_created("k2", "u1", "laptop")]
    );
}

#[test]
fn create_api_key_may_reuse_the_name_of_an_expired_key() {
    let mut expired = key_created("k1", "u1", "laptop");
    if let Event::ApiKeyCreated { expires, .. } = &mut expired {
        *expires = Some(now() - Duration::minutes(1));
    }
    let state = given(&[workspace_created(), user_created("u1", "alice"), expired]);
    assert_eq!(
        when(&state, &create_key("k2", "u1", "laptop", None)).unwrap(),
        vec![key_created("k2", "u1", "laptop")]
    );
}

#[test]
fn create_api_key_may_reuse_a_name_another_user_holds() {
    let state = given(&[
        workspace_created(),
        user_created("u1", "alice"),
        user_created("u2", "bob"),
        key_created("k1", "u1", "laptop"),
    ]);
    assert_eq!(
        when(&state, &create_key("k2", "u2", "laptop", None)).unwrap(),
        vec![key_created("k2", "u2", "laptop")]
    );
}

#[test]
fn create_api_key_for_an_unknown_user_is_not_found() {
    let state = given(&[workspace_created()]);
    assert_eq!(refused(&state, &create_key("k1", "nobody", "laptop", None)).kind, ErrorKind::NotFound);
}

#[test]
fn create_api_key_requires_a_user_id() {
    let state = given(&[workspace_created()]);
    assert_eq!(refused(&state, &create_key("k1", "", "laptop", None)).kind, ErrorKind::InvalidArgument);
}

#[test]
fn create_api_key_in_a_disabled_workspace_is_refused_as_disabled() {
    // The workspace alone is disabled, so only its rule can refuse.
    let state = given(&[workspace_created(), user_created("u1", "alice"), Event::WorkspaceDisabled {}]);
    assert_eq!(refused(&state, &create_key("k1", "u1", "laptop", None)).kind, ErrorKind::Disabled);
}

#[test]
fn create_api_key_in_a_missing_workspace_is_not_found() {
    assert_eq!(refused(&given(&[]), &create_key("k1", "u1", "laptop", None)).kind, ErrorKind::NotFound);
}

// ---- revoke-api-key ----

#[test]
fn revoke_api_key_records_the_revocation() {
    let state = given(&[workspace_created(), user_created("u1", "alice"), key_created("k1", "u1", "laptop")]);
    let cmd = C::RevokeApiKey { key_id: "k1".into() };
    let events = when(&state, &cmd).unwrap();
    assert_eq!(events, vec![key_revoked("k1", RevokeReason::Revoked)]);
    let next = after(&state, &events);
    assert!(next.keys["k1"].revoked);
    assert_eq!(answer(&cmd), Answer::Nothing);
}

#[test]
fn revoke_api_key_requires_a_key_id() {
    let state = given(&[workspace_created()]);
    assert_eq!(refused(&state, &C::RevokeApiKey { key_id: String::new() }).kind, ErrorKind::InvalidArgument);
}

#[test]
fn revoke_api_key_of_an_unknown_key_is_not_found() {
    let state = given(&[workspace_created()]);
    assert_eq!(refused(&state, &C::RevokeApiKey { key_id: "nokey".into() }).kind, ErrorKind::NotFound);
}

#[test]
fn revoke_api_key_of_a_revoked_key_is_not_found() {
    let state = given(&[
        workspace_created(),
        user_created("u1", "alice"),
        key_created("k1", "u1", "laptop"),
        key_revoked("k1", RevokeReason::Revoked),
    ]);
    assert_eq!(refused(&state, &C::RevokeApiKey { key_id: "k1".into() }).kind, ErrorKind::NotFound);
}

#[test]
fn revoke_api_key_in_a_missing_workspace_is_not_found() {
    assert_eq!(refused(&given(&[]), &C::RevokeApiKey { key_id: "k1".into() }).kind, ErrorKind::NotFound);
}

// ---- across commands ----

#[test]
fn replaying_the_recorded_events_rebuilds_the_live_state() {
    let script = [
        C::CreateWorkspace { name: "Acme".into() },
        create_user("u1", NewUser { username: "alice", email: "alice@example.com", ..NewUser::default() }),
        create_user("u2", NewUser::default()),
        create_key("k1", "u1", "laptop", None),
        create_key("k2", "u2", "ci", Some(now() + Duration::days(1))),
        create_key("k3", "u1", "phone", None),
        update_user("u1", UserEdit { roles: Some(&["writer"]), name: Some("Alice"), ..UserEdit::default() }),
        C::ResetPassword { user_id: "u1".into(), new_hash: "hash-temp".into() },
        C::ChangePassword {
            user_id: "u1".into(),
            verified_hash: "hash-temp".into(),
            new_hash: "hash-new".into(),
        },
        C::RevokeApiKey { key_id: "k1".into() },
        C::DisableUser { user_id: "u2".into() },
        update_user("u2", UserEdit { enabled: Some(true), ..UserEdit::default() }),
        C::DisableUser { user_id: "u2".into() },
        C::EnableUser { user_id: "u2".into() },
        create_user("u3", NewUser { username: "carol", email: "carol@example.com", ..NewUser::default() }),
        create_key("k4", "u3", "ci", None),
        C::DeleteUser { user_id: "u3".into() },
        create_user("u4", NewUser { username: "Carol", email: "carol@example.com", ..NewUser::default() }),
        C::UpdateWorkspace { name: Some("Acme Corp".into()), enabled: None },
        C::DisableWorkspace,
        C::UpdateWorkspace { name: None, enabled: Some(true) },
    ];
    let mut live = WorkspaceState::new(WS);
    let mut log = Vec::new();
    for command in &script {
        let events = when(&live, command).unwrap_or_else(|e| panic!("{command:?} refused: {e}"));
        events.iter().for_each(|e| apply(&mut live, e));
        log.extend(events);
    }
    assert_eq!(given(&log), live);
    assert!(live.exists && live.enabled && live.name == "Acme Corp");
    assert!(live.keys.values().all(|k| k.revoked));
}

#[test]
fn account_version_increments_on_disable_and_on_password_change_and_reset() {
    let mut state = given(&[workspace_created(), user_created("u1", "alice"), user_created("u2", "bob")]);
    assert_eq!(state.users["u1"].account_version, 1);
    let steps = [
        C::ResetPassword { user_id: "u1".into(), new_hash: "hash-temp".into() },
        C::ChangePassword {
            user_id: "u1".into(),
            verified_hash: "hash-temp".into(),
            new_hash: "hash-new".into(),
        },
        C::DisableUser { user_id: "u1".into() },
    ];
    for (i, command) in steps.iter().enumerate() {
        state = after(&state, &when(&state, command).unwrap());
        assert_eq!(state.users["u1"].account_version, 2 + i as i64, "after {command:?}");
    }
    // Re-enabling does not bump it; the workspace-wide disable does.
    state = after(
        &state,
        &when(&state, &update_user("u1", UserEdit { enabled: Some(true), ..UserEdit::default() })).unwrap(),
    );
    assert_eq!(state.users["u1"].account_version, 4);
    state = after(&state, &when(&state, &C::DisableWorkspace).unwrap());
    assert_eq!(state.users["u1"].account_version, 5);
    assert_eq!(state.users["u2"].account_version, 2);
}

// ---- the account version (docs/accounts.md, "Which changes end every session") ----

/// Every row of the table: a change, and whether it moves the account version on (so that
/// every token issued before dies). Each runs on a fresh enabled reader `u1`.
#[test]
fn the_account_version_moves_on_for_exactly_the_changes_in_the_table() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    let disabled = after(&state, &[user_disabled("u1")]);
    let proven = after(&state, &[verified("u1")]);
    let edit = |e: UserEdit| update_user("u1", e);
    let profile = |p: ProfileEdit| with_profile(update_user("u1", UserEdit::default()), p);
    let rows: Vec<(&str, &WorkspaceState, C, i64)> = vec![
        ("password changed", &state, change_password("u1", "hash-u1"), 1),
        ("password reset", &state, C::ResetPassword { user_id: "u1".into(), new_hash: "h".into() }, 1),
        ("disabled", &state, C::DisableUser { user_id: "u1".into() }, 1),
        (
            "disabled through update-user",
            &state,
            edit(UserEdit { enabled: Some(false), ..UserEdit::default() }),
            1,
        ),
        ("logged out everywhere", &state, C::EndSessions { user_id: "u1".into() }, 1),
        (
            "email verified with its token",
            &state,
            C::VerifyEmail { user_id: "u1".into(), token_version: 1 },
            1,
        ),
        (
            "password reset with a mailed token",
            &proven,
            C::CompletePasswordReset { user_id: "u1".into(), token_version: 1, new_hash: "h".into() },
            1,
        ),
        (
            "a verified email changed (and unverified by it)",
            &proven,
            edit(UserEdit { email: Some("new@example.com"), ..UserEdit::default() }),
            1,
        ),
        (
            "email changed",
            &state,
            edit(UserEdit { email: Some("new@example.com"), ..UserEdit::default() }),
            1,
        ),
        (
            "admin role gained",
            &state,
            edit(UserEdit { roles: Some(&["reader", "admin"]), ..UserEdit::default() }),
            1,
        ),
        ("username changed", &state, edit(UserEdit { username: Some("alicia"), ..UserEdit::default() }), 0),
        ("name changed", &state, edit(UserEdit { name: Some("Alicia"), ..UserEdit::default() }), 0),
        (
            "a role other than admin",
            &state,
            edit(UserEdit { roles: Some(&["writer"]), ..UserEdit::default() }),
            0,
        ),
        (
            "must change password set",
            &state,
            edit(UserEdit { must_change_password: Some(true), ..UserEdit::default() }),
            0,
        ),
        ("enabled again", &disabled, C::EnableUser { user_id: "u1".into() }, 0),
        ("verified", &state, profile(ProfileEdit { verified: Some(true), ..ProfileEdit::default() }), 1),
        (
            "first and last name",
            &state,
            profile(ProfileEdit {
                first_name: Some("A".into()),
                last_name: Some("L".into()),
                ..ProfileEdit::default()
            }),
            0,
        ),
        (
            "ssh key",
            &state,
            profile(ProfileEdit { ssh_key: Some(SSH_KEY.into()), ..ProfileEdit::default() }),
            0,
        ),
        ("renewed", &state, profile(ProfileEdit { renewed: Some(now()), ..ProfileEdit::default() }), 0),
        ("an API key created", &state, create_key("k1", "u1", "laptop", None), 0),
    ];
    for (what, state, command, bump) in rows {
        let events = when(state, &command).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(!events.is_empty(), "{what}: nothing changed");
        let before = state.users["u1"].account_version;
        assert_eq!(after(state, &events).users["u1"].account_version - before, bump, "{what}: {events:?}");
    }
    // Losing the admin role ends sessions too.
    let admin = after(
        &state,
        &when(&state, &edit(UserEdit { roles: Some(&["admin"]), ..UserEdit::default() })).unwrap(),
    );
    let events = when(&admin, &edit(UserEdit { roles: Some(&["writer"]), ..UserEdit::default() })).unwrap();
    assert!(events.contains(&Event::UserSessionsEnded {
        user_id: "u1".into(),
        reason: crate::events::SessionsEndReason::AdminRoleChanged
    }));
}

#[test]
fn logout_everywhere_needs_the_user_and_answers_nothing() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    let cmd = C::EndSessions { user_id: "u1".into() };
    assert_eq!(
        when(&state, &cmd).unwrap(),
        vec![Event::UserSessionsEnded {
            user_id: "u1".into(),
            reason: crate::events::SessionsEndReason::LogoutEverywhere
        }]
    );
    assert_eq!(answer(&cmd), Answer::Nothing);
    assert_eq!(refused(&state, &C::EndSessions { user_id: "nobody".into() }).kind, ErrorKind::NotFound);
    assert_eq!(refused(&given(&[]), &cmd).kind, ErrorKind::NotFound);
}

// ---- Netsoc's account fields ----

/// A syntactically valid OpenSSH ed25519 public key line.
const SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f alice@laptop";

fn with_profile(mut command: C, edit: ProfileEdit) -> C {
    match &mut command {
        C::UpdateUser { profile, .. } | C::CreateUser { profile, .. } => *profile = edit,
        other => panic!("no profile on {other:?}"),
    }
    command
}

#[test]
fn profile_fields_are_recorded_on_create_and_only_what_changes_on_update() {
    let state = given(&[workspace_created()]);
    let cmd = with_profile(
        create_user("u9", NewUser::default()),
        ProfileEdit {
            first_name: Some("Bob".into()),
            ssh_key: Some(format!("  {SSH_KEY} ")),
            ..ProfileEdit::default()
        },
    );
    let events = when(&state, &cmd).unwrap();
    assert_eq!(
        events[1],
        Event::UserProfileChanged {
            user_id: "u9".into(),
            first_name: Some("Bob".into()),
            last_name: None,
            ssh_key: Some(SSH_KEY.into()),
            verified: None,
            renewed: None,
        }
    );
    let next = after(&state, &events);
    assert_eq!(
        (next.users["u9"].profile.first_name.as_str(), next.users["u9"].profile.ssh_key.as_str()),
        ("Bob", SSH_KEY)
    );
    // Unchanged values are no event; a changed one is the only field.
    let same = with_profile(
        update_user("u9", UserEdit::default()),
        ProfileEdit { first_name: Some("Bob".into()), ..ProfileEdit::default() },
    );
    assert_eq!(when(&next, &same).unwrap(), vec![]);
    let verify = with_profile(
        update_user("u9", UserEdit::default()),
        ProfileEdit { verified: Some(true), ..ProfileEdit::default() },
    );
    assert_eq!(
        when(&next, &verify).unwrap(),
        vec![
            Event::UserProfileChanged {
                user_id: "u9".into(),
                first_name: None,
                last_name: None,
                ssh_key: None,
                verified: Some(true),
                renewed: None
            },
            Event::UserSessionsEnded {
                user_id: "u9".into(),
                reason: crate::events::SessionsEndReason::VerifiedChanged
            },
        ]
    );
}

#[test]
fn an_ssh_key_must_be_an_openssh_public_key_line() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    for bad in [
        "not a key",
        "ssh-ed25519",
        "ssh-ed25519 !!!notbase64",
        "ssh-dss AAAAB3NzaC1kc3MAAAA=",
        // The blob names another type than the line.
        "ssh-ed25519 AAAAB3NzaC1yc2EAAAABAw==",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 x\nssh-rsa",
    ] {
        let cmd = with_profile(
            update_user("u1", UserEdit::default()),
            ProfileEdit { ssh_key: Some(bad.into()), ..ProfileEdit::default() },
        );
        assert_eq!(refused(&state, &cmd).kind, ErrorKind::InvalidArgument, "{bad}");
    }
}

#[test]
fn emails_are_unique_per_workspace_whatever_their_case() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    let taken = NewUser { username: "bob", email: "ALICE@Example.com", ..NewUser::default() };
    let err = refused(&state, &create_user("u2", taken));
    assert_eq!((err.kind, err.message.as_str()), (ErrorKind::Duplicate, "email is already taken"));
    let state = after(
        &state,
        &when(
            &state,
            &create_user("u2", NewUser { username: "bob", email: "bob@example.com", ..NewUser::default() }),
        )
        .unwrap(),
    );
    let steal = update_user("u2", UserEdit { email: Some("Alice@example.com"), ..UserEdit::default() });
    assert_eq!(refused(&state, &steal).kind, ErrorKind::Duplicate);
    // A user may change the case of its own; many users may have none.
    assert!(when(
        &state,
        &update_user("u1", UserEdit { email: Some("Alice@Example.com"), ..UserEdit::default() })
    )
    .is_ok());
    let none = |name| NewUser { username: name, email: "", ..NewUser::default() };
    let state = after(&state, &when(&state, &create_user("u3", none("carol"))).unwrap());
    assert!(when(&state, &create_user("u4", none("dave"))).is_ok());
}

// ---- email tokens, self-registration, cleanup ----

fn verified(user_id: &str) -> Event {
    Event::UserProfileChanged {
        user_id: user_id.into(),
        first_name: None,
        last_name: None,
        ssh_key: None,
        verified: Some(true),
        renewed: None,
    }
}

#[test]
fn a_verification_token_works_once_at_the_version_it_was_issued_for() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    let cmd = C::VerifyEmail { user_id: "u1".into(), token_version: 1 };
    let events = when(&state, &cmd).unwrap();
    assert_eq!(events[0], verified("u1"));
    let next = after(&state, &events);
    assert!(next.users["u1"].profile.verified);
    assert_eq!(next.users["u1"].account_version, 2, "the token's version is gone");
    assert_eq!(
        refused(&next, &C::VerifyEmail { user_id: "u1".into(), token_version: 2 }).kind,
        ErrorKind::InvalidArgument
    );
    assert_eq!(refused(&next, &cmd).kind, ErrorKind::AuthFailed, "used");
    assert_eq!(
        refused(&state, &C::VerifyEmail { user_id: "nobody".into(), token_version: 1 }).kind,
        ErrorKind::AuthFailed
    );
    let disabled = after(&state, &[user_disabled("u1")]);
    assert_eq!(
        refused(&disabled, &C::VerifyEmail { user_id: "u1".into(), token_version: 2 }).kind,
        ErrorKind::AuthFailed
    );
    assert_eq!(answer(&cmd), Answer::Nothing);
}

#[test]
fn a_reset_token_sets_a_password_once_and_only_for_a_verified_account() {
    let state = given(&[workspace_created(), user_created("u1", "alice"), verified("u1")]);
    let cmd = C::CompletePasswordReset { user_id: "u1".into(), token_version: 1, new_hash: "new".into() };
    let events = when(&state, &cmd).unwrap();
    assert_eq!(
        events,
        vec![Event::UserPasswordChanged { user_id: "u1".into(), password_hash: "new".into() }]
    );
    let next = after(&state, &events);
    assert_eq!((next.users["u1"].account_version, next.users["u1"].must_change_password), (2, false));
    assert_eq!(refused(&next, &cmd).kind, ErrorKind::AuthFailed, "used");
    let unverified = given(&[workspace_created(), user_created("u1", "alice")]);
    assert_eq!(refused(&unverified, &cmd).kind, ErrorKind::AuthFailed);
}

#[test]
fn a_new_email_is_unverified_until_proven_unless_an_admin_says_so() {
    let state = given(&[workspace_created(), user_created("u1", "alice"), verified("u1")]);
    let change = update_user("u1", UserEdit { email: Some("new@example.com"), ..UserEdit::default() });
    let next = after(&state, &when(&state, &change).unwrap());
    assert!(!next.users["u1"].profile.verified);
    assert_eq!(next.users["u1"].account_version, 2, "one end of sessions, not two");
    let vouched = with_profile(change, ProfileEdit { verified: Some(true), ..ProfileEdit::default() });
    let next = after(&state, &when(&state, &vouched).unwrap());
    assert!(next.users["u1"].profile.verified);
}

#[test]
fn cleanup_deletes_only_a_self_registered_account_still_unverified_and_old_enough() {
    let registered = |user_id: &str, username: &str| {
        let mut created = user_created(user_id, username);
        if let Event::UserCreated { self_registered, .. } = &mut created {
            *self_registered = true;
        }
        created
    };
    let state = given(&[
        workspace_created(),
        registered("old", "old"),
        registered("proven", "proven"),
        verified("proven"),
        user_created("made", "made"),
    ]);
    assert!(state.users["old"].self_registered && !state.users["made"].self_registered);
    let cutoff = now() + Duration::seconds(1);
    let remove =
        |user_id: &str, created_before| C::RemoveUnverified { user_id: user_id.into(), created_before };
    let events = when(&state, &remove("old", cutoff)).unwrap();
    assert_eq!(
        events.last(),
        Some(&Event::UserDeleted {
            user_id: "old".into(),
            username: "old".into(),
            reason: Some(crate::events::DeletionReason::UnverifiedExpired)
        })
    );
    assert!(when(&state, &remove("old", now())).unwrap().is_empty(), "not old enough");
    assert!(when(&state, &remove("proven", cutoff)).unwrap().is_empty(), "verified");
    assert!(when(&state, &remove("made", cutoff)).unwrap().is_empty(), "an admin created it");
    assert!(when(&state, &remove("gone", cutoff)).unwrap().is_empty(), "deleted already");
}

#[test]
fn a_user_is_numbered_once() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    let cmd = C::NumberUser { user_id: "u1".into(), number: 7 };
    let events = when(&state, &cmd).unwrap();
    assert_eq!(events, vec![Event::UserNumbered { user_id: "u1".into(), number: 7 }]);
    let next = after(&state, &events);
    assert_eq!(next.users["u1"].number, Some(7));
    assert!(when(&next, &C::NumberUser { user_id: "u1".into(), number: 8 }).unwrap().is_empty());
    assert!(when(&state, &C::NumberUser { user_id: "gone".into(), number: 8 }).unwrap().is_empty());
}

fn import(user_id: &str, username: &str, number: i32) -> C {
    C::ImportUser(ImportedUser {
        user_id: user_id.into(),
        username: username.into(),
        name: String::new(),
        email: format!("{username}@tcd.ie"),
        roles: strings(&["admin"]),
        password_hash: Some("$2b$04$bcryptbcryptbcryptbcryptbcryptbcryptbcryptbcryptbcrypt".into()),
        profile: ProfileEdit { verified: Some(true), ..ProfileEdit::default() },
        number,
        source: "netsoc".into(),
        account_version: 4,
        created: now() - chrono::Duration::days(900),
        updated: now() - chrono::Duration::days(30),
    })
}

#[test]
fn an_imported_user_keeps_its_id_version_hash_and_times_and_takes_no_other_ones_id() {
    let state = given(&[workspace_created()]);
    let events = when(&state, &import("u1", "alice", 7)).unwrap();
    let types: Vec<&str> = events.iter().map(Event::event_type).collect();
    assert_eq!(types, ["user.created", "user.profile.changed", "user.imported"]);
    let Event::UserCreated { number, password_hash, created, .. } = &events[0] else { unreachable!() };
    assert_eq!((*number, password_hash.as_deref().map(|h| &h[..4])), (Some(7), Some("$2b$")));
    assert_eq!(*created, now() - chrono::Duration::days(900));
    let next = after(&state, &events);
    assert_eq!((next.users["u1"].account_version, next.users["u1"].number), (4, Some(7)));
    assert_eq!(refused(&next, &import("u2", "bob", 7)).kind, ErrorKind::Duplicate, "the id is taken");
    assert_eq!(refused(&next, &import("u2", "alice", 8)).kind, ErrorKind::Duplicate, "the name is taken");
}

#[test]
fn a_rehash_replaces_only_the_hash_it_verified_and_ends_no_session() {
    let state = after(
        &given(&[workspace_created()]),
        &when(&given(&[workspace_created()]), &import("u1", "alice", 7)).unwrap(),
    );
    let old = state.users["u1"].password_hash.clone().unwrap();
    let rehash = |old_hash: &str| C::RehashPassword {
        user_id: "u1".into(),
        old_hash: old_hash.into(),
        new_hash: "$argon2id$new".into(),
    };
    let events = when(&state, &rehash(&old)).unwrap();
    assert_eq!(
        events,
        vec![Event::UserPasswordRehashed { user_id: "u1".into(), password_hash: "$argon2id$new".into() }]
    );
    let next = after(&state, &events);
    assert_eq!(next.users["u1"].account_version, 4, "no session ended");
    assert_eq!(next.users["u1"].password_hash.as_deref(), Some("$argon2id$new"));
    assert_eq!(when(&next, &rehash(&old)).unwrap(), vec![], "the hash changed meanwhile: nothing");
}

#[test]
fn set_password_changes_it_without_the_current_one_and_ends_sessions() {
    let state = given(&[workspace_created(), user_created("u1", "alice")]);
    let events = when(&state, &C::SetPassword { user_id: "u1".into(), new_hash: "h2".into() }).unwrap();
    assert_eq!(events, vec![Event::UserPasswordChanged { user_id: "u1".into(), password_hash: "h2".into() }]);
    assert_eq!(after(&state, &events).users["u1"].account_version, 2);
    let missing = C::SetPassword { user_id: "nobody".into(), new_hash: "h2".into() };
    assert_eq!(refused(&state, &missing).kind, ErrorKind::NotFound);
}
