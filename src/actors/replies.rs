//! The wire reply to a workspace command: the domain's [`Answer`] (which workspace, user or
//! key the command concerns) rendered from the state after its events as the protocol's
//! records. The domain stays free of wire types; one-time secrets are added by the service.

use crate::domain::iso;
use crate::domain::workspace::{Answer, KeyState, UserState, WorkspaceState};
use crate::protocol::{ApiKeyRecord, IamResponse, UserRecord, WorkspaceRecord};

/// The reply for `answer`, read from `state`.
pub fn render(state: &WorkspaceState, answer: &Answer) -> IamResponse {
    let mut r = IamResponse::default();
    match answer {
        Answer::Nothing => {}
        Answer::Workspace => r.workspace = Some(workspace_record(state)),
        Answer::User(id) => r.user = state.users.get(id).map(|u| user_record(state, u)),
        Answer::Key(id) => r.api_key = state.keys.get(id).map(key_record),
    }
    r
}

fn workspace_record(state: &WorkspaceState) -> WorkspaceRecord {
    WorkspaceRecord {
        id: state.id.clone(),
        name: state.name.clone(),
        enabled: state.enabled,
        created: state.created.map(iso).unwrap_or_default(),
    }
}

fn user_record(state: &WorkspaceState, u: &UserState) -> UserRecord {
    UserRecord {
        id: u.id.clone(),
        workspace: state.id.clone(),
        username: u.username.clone(),
        name: u.name.clone(),
        email: u.email.clone(),
        roles: u.roles.clone(),
        enabled: u.enabled,
        must_change_password: u.must_change_password,
        created: iso(u.created),
        first_name: u.profile.first_name.clone(),
        last_name: u.profile.last_name.clone(),
        ssh_key: u.profile.ssh_key.clone(),
        verified: u.profile.verified,
        renewed: u.profile.renewed.map(iso).unwrap_or_default(),
    }
}

/// `last_used` is not the aggregate's: the read table's, stamped in the background.
fn key_record(k: &KeyState) -> ApiKeyRecord {
    ApiKeyRecord {
        id: k.id.clone(),
        user_id: k.user_id.clone(),
        name: k.name.clone(),
        prefix: k.prefix.clone(),
        expires: k.expires.map(iso).unwrap_or_default(),
        created: iso(k.created),
        last_used: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::workspace::apply;
    use crate::events::Event;
    use chrono::{TimeZone, Utc};

    fn state() -> WorkspaceState {
        let now = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let mut state = WorkspaceState::new("acme");
        for event in [
            Event::WorkspaceCreated { workspace_id: "acme".into(), name: "Acme".into(), created: now },
            Event::UserCreated {
                user_id: "u9".into(),
                username: "bob".into(),
                name: "Bob".into(),
                email: "bob@example.com".into(),
                roles: vec!["writer".into(), "admin".into()],
                enabled: true,
                must_change_password: true,
                password_hash: Some("hash-u9".into()),
                created: now,
                self_registered: false,
                number: None,
            },
            Event::ApiKeyCreated {
                key_id: "k1".into(),
                user_id: "u9".into(),
                name: "laptop".into(),
                prefix: "tg_k".into(),
                key_hash: "sha-k1".into(),
                expires: Some(Utc.with_ymd_and_hms(2026, 2, 1, 3, 4, 5).unwrap()),
                created: now,
            },
            Event::ApiKeyCreated {
                key_id: "k2".into(),
                user_id: "u9".into(),
                name: "ci".into(),
                prefix: "tg_c".into(),
                key_hash: "sha-k2".into(),
                expires: None,
                created: now,
            },
        ] {
            apply(&mut state, &event);
        }
        state
    }

    #[test]
    fn each_answer_is_rendered_as_its_record_and_nothing_else() {
        let state = state();
        let created = "2026-01-02T03:04:05Z";
        assert_eq!(
            render(&state, &Answer::Workspace),
            IamResponse {
                workspace: Some(WorkspaceRecord {
                    id: "acme".into(),
                    name: "Acme".into(),
                    enabled: true,
                    created: created.into()
                }),
                ..Default::default()
            }
        );
        assert_eq!(
            render(&state, &Answer::User("u9".into())).user,
            Some(UserRecord {
                id: "u9".into(),
                workspace: "acme".into(),
                username: "bob".into(),
                name: "Bob".into(),
                email: "bob@example.com".into(),
                roles: vec!["writer".into(), "admin".into()],
                enabled: true,
                must_change_password: true,
                created: created.into(),
                first_name: String::new(),
                last_name: String::new(),
                ssh_key: String::new(),
                verified: false,
                renewed: String::new(),
            })
        );
        assert_eq!(
            render(&state, &Answer::Key("k1".into())).api_key,
            Some(ApiKeyRecord {
                id: "k1".into(),
                user_id: "u9".into(),
                name: "laptop".into(),
                prefix: "tg_k".into(),
                expires: "2026-02-01T03:04:05Z".into(),
                created: created.into(),
                last_used: String::new(),
            })
        );
        assert_eq!(render(&state, &Answer::Key("k2".into())).api_key.unwrap().expires, "", "never expires");
        assert_eq!(render(&state, &Answer::Nothing), IamResponse::default());
        assert_eq!(render(&state, &Answer::User("gone".into())), IamResponse::default());
    }
}
