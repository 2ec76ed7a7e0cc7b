//! The OpenAPI document and the `/docs` page of the real binary. Headless Chromium (Debian's
//! package, which `make test` installs; `IAMD_TEST_CHROMIUM` names it) opens `/docs/` with
//! every host but 127.0.0.1 unresolvable, so the page can only work if iamd serves all of it,
//! and must render every operation of the document.

use crate::support::server::TestServer;
use crate::support::TestDb;
use std::process::Command;

fn chromium() -> String {
    match std::env::var("IAMD_TEST_CHROMIUM") {
        Ok(p) if !p.trim().is_empty() => p.trim().to_owned(),
        _ => ["chromium", "chromium-browser"]
            .iter()
            .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
            .map(|c| c.to_string())
            .expect("no chromium: run `make test` (it installs Debian's chromium) or set IAMD_TEST_CHROMIUM"),
    }
}

/// The DOM of `url` after its scripts ran, with the network closed to everything but loopback.
fn rendered(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=20000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .expect("running chromium");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_renders_every_operation_with_no_network() {
    let db = TestDb::new().await;
    let server = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);

    let (status, doc) = server.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    let operations: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().unwrap().keys().map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    // iamd's own 37, and Netsoc's /v1 surface: its twelve operations and /health.
    assert_eq!(operations.len(), 50, "{operations:?}");
    // Every operation says what it answers, errors included.
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let codes: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            assert!(!codes.is_empty(), "{method} {path} has no responses");
            let public = [
                "/api/v1/auth/login",
                "/api/v1/auth/bootstrap-status",
                "/api/v1/auth/register",
                "/api/v1/auth/verification",
                "/api/v1/auth/verify",
                "/api/v1/auth/password-reset",
                "/api/v1/auth/password-reset/complete",
                "/healthz",
                "/readyz",
                "/health",
                "/v1/users/{username}/login",
            ];
            if op.get("security").is_some() {
                assert!(codes.iter().any(|c| *c == "401"), "{method} {path} does not describe its 401");
            } else {
                assert!(
                    public.contains(&path.as_str()) || path == "/.well-known/jwks.json",
                    "{method} {path} is unauthenticated"
                );
            }
        }
    }

    let dom = rendered(&format!("{}/docs/", server.base));
    for (method, path) in &operations {
        assert!(dom.contains(&format!("data-path=\"{path}\"")), "{method} {path} is not rendered");
    }
    let blocks = dom.matches("opblock-summary-method").count();
    assert_eq!(blocks, operations.len(), "one rendered block per operation");
    assert!(dom.contains("iamd"), "the title is rendered");

    // `/docs` leads to the page.
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = client.get(format!("{}/docs", server.base)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 308);
    assert_eq!(resp.headers()["location"], "/docs/");
}
