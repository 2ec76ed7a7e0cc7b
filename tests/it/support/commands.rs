//! Workspace commands as the tests send them to the actor registry directly.

use iamd::actors::Execute;
use iamd::domain::workspace::WorkspaceCommand;
use iamd::events::Metadata;

/// `command` with test metadata and no request id.
pub fn execute(command: WorkspaceCommand) -> Execute {
    Execute {
        command,
        metadata: Metadata { source: "test".into(), operation: "test".into(), ..Default::default() },
        idempotency: None,
    }
}

/// An enabled reader `username` with id `user_id` and a (cheap, unusable) argon2id hash.
pub fn create_user(user_id: &str, username: &str) -> Execute {
    execute(WorkspaceCommand::CreateUser {
        user_id: user_id.into(),
        username: username.into(),
        name: String::new(),
        email: String::new(),
        roles: vec!["reader".into()],
        enabled: true,
        must_change_password: false,
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        profile: Default::default(),
        self_registered: false,
        number: None,
    })
}
