//! The actor registry against real PostgreSQL: one writer per workspace (commands of one
//! workspace are serialised, a second process's writes are caught by the version check and
//! the command is decided again on the reloaded stream), idle actors stop and come back.

use crate::support::commands::{create_user, execute};
use crate::support::TestDb;
use iamd::actors::Registry;
use iamd::domain::workspace::WorkspaceCommand;
use iamd::protocol::ErrorKind;
use std::time::Duration;

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn versions(db: &TestDb, stream: &str) -> Vec<i64> {
    let client = db.pool().get().await.unwrap();
    let rows = client
        .query("SELECT version FROM events WHERE stream = $1 ORDER BY position", &[&stream])
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[actix_rt::test]
async fn a_stale_actor_of_another_process_reloads_and_decides_again() {
    let db = TestDb::new().await;
    // Two registries on one database stand for two iamd processes.
    let a = Registry::new(db.store(), Duration::from_secs(60), 1);
    let b = Registry::new(db.store(), Duration::from_secs(60), 1);
    a.execute("acme", execute(WorkspaceCommand::CreateWorkspace { name: "Acme".into() })).await.unwrap();
    b.execute("acme", create_user(&new_id(), "bob")).await.unwrap();
    // A's actor still holds the state from before bob: its append conflicts, it reloads,
    // and deciding again on the current stream finds the name taken.
    let err = a.execute("acme", create_user(&new_id(), "bob")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Duplicate);
    // And a valid command from the stale actor lands after the other process's event.
    a.execute("acme", create_user(&new_id(), "carol")).await.unwrap();
    assert_eq!(versions(&db, "workspace:acme").await, vec![1, 2, 3]);
}

#[actix_rt::test]
async fn commands_of_one_workspace_are_serialised() {
    let db = TestDb::new().await;
    let registry = Registry::new(db.store(), Duration::from_secs(60), 2);
    registry
        .execute("acme", execute(WorkspaceCommand::CreateWorkspace { name: String::new() }))
        .await
        .unwrap();
    let handles: Vec<_> = (0..40)
        .map(|i| {
            let registry = registry.clone();
            actix_rt::spawn(async move {
                registry.execute("acme", create_user(&new_id(), &format!("user{i}"))).await
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap().expect("every command succeeds: none races another of its workspace");
    }
    assert_eq!(versions(&db, "workspace:acme").await, (1..=41).collect::<Vec<i64>>());
}

#[actix_rt::test]
async fn idle_actors_stop_and_a_later_command_reloads_the_stream() {
    let db = TestDb::new().await;
    let registry = Registry::new(db.store(), Duration::from_millis(200), 1);
    for ws in ["a", "b"] {
        registry
            .execute(ws, execute(WorkspaceCommand::CreateWorkspace { name: String::new() }))
            .await
            .unwrap();
    }
    assert_eq!(registry.active(), 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while registry.active() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(registry.active(), 0, "idle actors stopped");
    let err = registry
        .execute("a", execute(WorkspaceCommand::CreateWorkspace { name: String::new() }))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Duplicate, "the new actor rebuilt its state from the log");
    assert_eq!(registry.active(), 1);
}
