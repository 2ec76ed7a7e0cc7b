//! Netsoc's compatibility settings (docs/netsoc.md), through the real binary where the process
//! is what is tested: the root account `compat.root_password` creates.

use crate::support::server::{error_type, ok, TestServer};
use crate::support::TestDb;
use serde_json::json;

const ROOT_PASSWORD: &str = "the root passphrase 7431";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_is_created_once_in_an_empty_compat_workspace_and_its_password_never_logged() {
    let db = TestDb::new().await;
    let env = [
        ("IAMD_BOOTSTRAP_ON_START", "false"),
        ("IAMD_COMPAT_WORKSPACE", "netsoc"),
        ("IAMD_COMPAT_ROOT_PASSWORD", ROOT_PASSWORD),
    ];
    let server = TestServer::binary(db.url(), &env);
    let login =
        ok(server.call(json!({"operation": "login", "username": "root", "password": ROOT_PASSWORD})).await);
    assert!(login["jwt"].is_string());
    let users = ok(server.call(json!({"operation": "list-users", "workspace": "netsoc"})).await);
    let root = &users["users"][0];
    assert_eq!(users["users"].as_array().unwrap().len(), 1, "{users}");
    assert_eq!((root["username"].as_str(), root["roles"].clone()), (Some("root"), json!(["admin"])));
    assert_eq!(root["verified"], true);
    assert!(root["renewed"].as_str().is_some_and(|r| r.starts_with("20")), "{root}");
    assert!(server.logged("root user created").len() == 1);
    assert!(server.logged(ROOT_PASSWORD).is_empty(), "the password is never logged");

    // A second start finds a user there: nothing is created, whatever the password says now.
    drop(server);
    let env = [
        ("IAMD_BOOTSTRAP_ON_START", "false"),
        ("IAMD_COMPAT_WORKSPACE", "netsoc"),
        ("IAMD_COMPAT_ROOT_PASSWORD", "another root passphrase"),
    ];
    let server = TestServer::binary(db.url(), &env);
    assert!(server.logged("root user created").is_empty());
    let again = server
        .call(json!({"operation": "login", "username": "root", "password": "another root passphrase"}))
        .await;
    assert_eq!(error_type(&again), "auth-failed");
    let users = ok(server.call(json!({"operation": "list-users", "workspace": "netsoc"})).await);
    assert_eq!(users["users"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_password_the_policy_refuses_stops_the_start_saying_why() {
    let db = TestDb::new().await;
    let env = [("IAMD_BOOTSTRAP_ON_START", "false"), ("IAMD_COMPAT_ROOT_PASSWORD", "short")];
    let (code, _, stderr) = crate::support::server::run_iamd_with(db.url(), &env, &["serve"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("creating the root user (compat.root_password) failed"), "{stderr}");
}

/// The integer ids of users: one each, from creation (in `user.created`), or — for a user
/// created before ids existed — given at start (`user.numbered`); never reused, not even a
/// deleted user's; the same after a rebuild of the read tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_user_has_an_integer_id_never_reused_and_kept_by_a_rebuild() {
    use crate::support::history;
    use iamd::events::Event;
    let db = TestDb::new().await;
    // A user written before ids existed: its creation carries none.
    let store = db.store();
    let created = chrono::Utc::now();
    let old = Event::UserCreated {
        user_id: "u-old".into(),
        username: "veteran".into(),
        name: "Veteran".into(),
        email: String::new(),
        roles: vec!["reader".into()],
        enabled: true,
        must_change_password: false,
        password_hash: None,
        created,
        self_registered: false,
        number: None,
    };
    let ws = Event::WorkspaceCreated { workspace_id: "netsoc".into(), name: "Netsoc".into(), created };
    history::ok(&store, history::first("workspace:netsoc", vec![ws, old])).await;

    let server = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
    let numbers = || async {
        let client = db.pool().get().await.unwrap();
        client
            .query("SELECT username, number FROM users ORDER BY number", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, Option<i32>>(1)))
            .collect::<Vec<_>>()
    };
    assert_eq!(numbers().await, [("veteran".to_owned(), Some(1))], "numbered at start");
    let a = server.create_user("netsoc", "ann", "a long enough passphrase", &["reader"]).await;
    server.create_user("netsoc", "ben", "a long enough passphrase", &["reader"]).await;
    ok(server.call(json!({"operation": "delete-user", "user_id": a})).await);
    server.create_user("netsoc", "cat", "a long enough passphrase", &["reader"]).await;
    let expected =
        [("veteran".to_owned(), Some(1)), ("ben".to_owned(), Some(3)), ("cat".to_owned(), Some(4))];
    assert_eq!(numbers().await, expected, "ann's 2 is not given again");
    let client = db.pool().get().await.unwrap();
    let recorded: Vec<i64> = db
        .column(
            "SELECT (payload->>'number')::bigint FROM events \
             WHERE event_type IN ('user.created', 'user.numbered') AND payload ? 'number' ORDER BY position",
        )
        .await;
    assert_eq!(recorded, [1, 2, 3, 4], "every id is in the log");
    drop(server);

    let (code, stdout, stderr) = crate::support::server::run_iamd(db.url(), &["projections", "rebuild"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(numbers().await, expected, "a rebuild keeps them");
    // As in a database restored from the log, the sequence starts over: the start moves it
    // past every id the log holds (ann's deleted 2 included), and numbers nobody again.
    client.execute("ALTER SEQUENCE user_numbers RESTART", &[]).await.unwrap();
    let server = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
    assert_eq!(numbers().await, expected);
    server.create_user("netsoc", "dan", "a long enough passphrase", &["reader"]).await;
    assert_eq!(numbers().await.last().unwrap().1, Some(5));
}
