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
