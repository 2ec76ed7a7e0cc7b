//! The operations surface through the real binary: `GET /metrics` (who may read it, counters
//! that move with known requests, gauges, no secret in the text), `GET /readyz`, request ids
//! echoed and carried by the JSON log lines, and CORS from `http.cors.allowed_origins`.

use crate::support::server::{error_type, ok, TestServer, GATEWAY_SECRET};
use crate::support::TestDb;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const PASSWORD: &str = "a long enough passphrase";
const WRONG_PASSWORD: &str = "not-the-passphrase-42";
const ORIGIN: &str = "https://app.example";

/// A raw request: (status, headers, body text).
async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, String) {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", server.base));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("HTTP request to iamd");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap_or_default())
}

async fn metrics(server: &TestServer, bearer: Option<&str>) -> (u16, HeaderMap, String) {
    send(server, Method::GET, "/metrics", bearer, &[]).await
}

/// The value of the sample `series` (name and labels exactly as exposed).
#[track_caller]
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
        .parse()
        .unwrap()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The log lines containing `needle`, waiting up to 5 s for at least one with `also`.
async fn logged_with(server: &TestServer, needle: &str, also: &str) -> Vec<String> {
    for _ in 0..50 {
        let lines = server.logged(needle);
        if lines.iter().any(|l| l.contains(also)) {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no log line with {needle:?} and {also:?}; logged: {:?}", server.logged(needle));
}

async fn create_user(server: &TestServer, name: &str, role: &str) -> String {
    let r = ok(server
        .call(json!({"operation": "create-user", "workspace": "acme",
            "user": {"username": name, "password": PASSWORD, "roles": [role]}}))
        .await);
    r["user"]["id"].as_str().unwrap().to_owned()
}

async fn jwt_of(server: &TestServer, username: &str) -> String {
    server.jwt(username, PASSWORD).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_for_admins_and_count_requests_keys_and_the_population() {
    let db = TestDb::new().await;
    let server = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
    ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": "acme"}})).await);
    let admin_id = create_user(&server, "admin", "admin").await;
    create_user(&server, "reader", "reader").await;
    let alice = create_user(&server, "alice", "writer").await;
    let admin = jwt_of(&server, "admin").await;
    let reader = jwt_of(&server, "reader").await;
    let mut secrets = vec![PASSWORD.to_owned(), WRONG_PASSWORD.to_owned(), admin.clone(), reader.clone()];

    for _ in 0..3 {
        let r =
            server.call(json!({"operation": "login", "username": "alice", "password": WRONG_PASSWORD})).await;
        assert_eq!(error_type(&r), "auth-failed");
    }
    let mut key_ids = Vec::new();
    for name in ["one", "two"] {
        let r = ok(server
            .call(json!({"operation": "create-api-key", "workspace": "acme", "key": {"user_id": alice, "name": name}}))
            .await);
        key_ids.push(r["api_key"]["id"].as_str().unwrap().to_owned());
        secrets.push(r["api_key_plaintext"].as_str().unwrap().to_owned());
    }
    ok(server.call(json!({"operation": "revoke-api-key", "workspace": "acme", "key_id": key_ids[0]})).await);

    // Who may read.
    let unauthorized = |(status, _, body): (u16, HeaderMap, String)| {
        assert_eq!(
            (status, serde_json::from_str::<Value>(&body).unwrap()),
            (401, json!({"error": "auth failure"}))
        )
    };
    unauthorized(metrics(&server, None).await);
    unauthorized(metrics(&server, Some("tg_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")).await);
    unauthorized(metrics(&server, Some("not.a.jwt")).await);
    // The gateway secret is no user: it does not read metrics.
    unauthorized(metrics(&server, Some(GATEWAY_SECRET)).await);
    let (status, _, body) = metrics(&server, Some(&reader)).await;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).unwrap()),
        (403, json!({"error": "access denied"}))
    );

    let (status, headers, text) = metrics(&server, Some(&admin)).await;
    assert_eq!(status, 200, "{text}");
    assert!(header(&headers, "content-type").is_some_and(|c| c.starts_with("application/openmetrics-text")));
    let requests = |operation: &str, outcome: &str| {
        sample(
            &text,
            &format!(
                r#"iamd_requests_total{{operation="{operation}",outcome="{outcome}",transport="http"}}"#
            ),
        )
    };
    assert_eq!(requests("login", "auth-failed"), 3.0);
    assert_eq!(requests("login", "ok"), 2.0);
    assert_eq!(requests("create-user", "ok"), 3.0);
    assert_eq!(requests("create-api-key", "ok"), 2.0);
    assert_eq!(requests("revoke-api-key", "ok"), 1.0);
    assert_eq!(
        sample(&text, r#"iamd_request_duration_seconds_count{operation="login",transport="http"}"#),
        5.0
    );
    assert_eq!(
        sample(
            &text,
            r#"iamd_request_duration_seconds_bucket{le="+Inf",operation="login",transport="http"}"#
        ),
        5.0
    );
    assert_eq!(sample(&text, "iamd_api_keys_created_total"), 2.0);
    assert_eq!(sample(&text, "iamd_api_keys_revoked_total"), 1.0);
    assert_eq!(sample(&text, "iamd_users"), 3.0);
    assert_eq!(sample(&text, "iamd_workspaces"), 1.0);
    assert_eq!(sample(&text, "iamd_api_keys"), 1.0);
    assert_eq!(sample(&text, "iamd_workspace_actors"), 1.0);
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret in the metrics:\n{text}");
    }

    // A scraper with an admin API key reads them too; its key counts as created.
    let r = ok(server
        .call(json!({"operation": "create-api-key", "workspace": "acme", "key": {"user_id": admin_id, "name": "scraper"}}))
        .await);
    let scraper = r["api_key_plaintext"].as_str().unwrap().to_owned();
    let (status, _, text) = metrics(&server, Some(&scraper)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(sample(&text, "iamd_api_keys_created_total"), 3.0);
    assert_eq!(sample(&text, "iamd_api_keys"), 2.0);
    assert!(!text.contains(&scraper));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_needs_the_database_and_an_active_signing_key_healthz_only_the_database() {
    let db = TestDb::new().await;
    let server = TestServer::binary(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
    assert_eq!(server.get("/readyz").await, (200, json!({"status": "ready"})));

    let client = db.pool().get().await.unwrap();
    client.execute("UPDATE signing_keys SET valid_until = now() + interval '1 hour'", &[]).await.unwrap();
    drop(client);
    let (status, _, body) = send(&server, Method::GET, "/readyz", None, &[("X-Request-Id", "ready-1")]).await;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).unwrap()),
        (503, json!({"status": "not ready", "reason": "no active signing key"}))
    );
    // Logged inside the request's span.
    let lines = logged_with(&server, "ready-1", "not ready").await;
    assert!(
        lines.iter().any(|l| l.contains("not ready") && l.contains("\"request_id\":\"ready-1\"")),
        "{lines:?}"
    );
    assert_eq!(server.get("/healthz").await.0, 200, "liveness does not need a signing key");

    db.cut_off().await;
    assert_eq!(
        server.get("/readyz").await,
        (503, json!({"status": "not ready", "reason": "database unavailable"}))
    );
    assert_eq!(server.get("/healthz").await.0, 503);
    db.reopen().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_or_made_and_carried_by_the_log_lines() {
    let db = TestDb::new().await;
    let server = TestServer::binary(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);

    let (status, headers, _) =
        send(&server, Method::GET, "/healthz?probe=s3cr3t-query", None, &[("X-Request-Id", "req-42.a_B")])
            .await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-request-id"), Some("req-42.a_B"));
    let lines = logged_with(&server, "req-42.a_B", "\"status\":200").await;
    let access: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["status"] == 200)
        .collect();
    assert_eq!(access.len(), 1, "one access line: {lines:?}");
    let span = &access[0]["span"];
    assert_eq!((span["request_id"].as_str(), span["method"].as_str()), (Some("req-42.a_B"), Some("GET")));
    assert_eq!(span["path"], "/healthz");
    assert!(access[0]["fields"]["duration_ms"].is_number(), "{}", access[0]);
    assert!(server.logged("s3cr3t-query").is_empty(), "the query string is never logged");

    // No id, or one that is not sane: a fresh UUID.
    for given in [None, Some("not sane!"), Some(&*"x".repeat(65))] {
        let headers: Vec<(&str, &str)> = given.iter().map(|g| ("X-Request-Id", *g)).collect();
        let (_, got, _) = send(&server, Method::GET, "/healthz", None, &headers).await;
        let id = header(&got, "x-request-id").expect("an id is always sent").to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{given:?} -> {id}");
        logged_with(&server, &id, "\"status\":200").await;
    }
    assert!(server.logged("not sane!").is_empty());

    // Headers' values never reach the log: the gateway secret is a bearer on every call here.
    ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": "acme"}})).await);
    let (status, headers, _) =
        send(&server, Method::GET, "/api/v1/auth/whoami", Some(GATEWAY_SECRET), &[("X-Request-Id", "who-1")])
            .await;
    assert_eq!(status, 401);
    assert_eq!(header(&headers, "x-request-id"), Some("who-1"));
    logged_with(&server, "who-1", "\"status\":401").await;
    assert!(server.logged(GATEWAY_SECRET).is_empty(), "the Authorization header is never logged");
}

/// A preflight `OPTIONS /api/v1/auth/whoami` from `origin` asking for GET.
async fn preflight(server: &TestServer, origin: &str) -> (u16, HeaderMap) {
    let (status, headers, _) = send(
        server,
        Method::OPTIONS,
        "/api/v1/auth/whoami",
        None,
        &[("Origin", origin), ("Access-Control-Request-Method", "GET")],
    )
    .await;
    (status, headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_the_configured_origins_only_and_is_off_by_default() {
    let db = TestDb::new().await;
    let server = TestServer::spawn(
        db.url(),
        &[
            ("IAMD_BOOTSTRAP_ON_START", "false"),
            ("IAMD_HTTP_CORS_ALLOWED_ORIGINS", &format!("{ORIGIN}, https://admin.example")),
        ],
    );
    let (status, headers) = preflight(&server, ORIGIN).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(header(&headers, "access-control-allow-credentials"), Some("true"));
    assert_eq!(header(&headers, "access-control-max-age"), Some("3600"));
    let allowed = header(&headers, "access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
    for h in ["authorization", "content-type", "idempotency-key", "x-request-id"] {
        assert!(allowed.contains(h), "{h} in {allowed}");
    }
    let methods = header(&headers, "access-control-allow-methods").unwrap_or_default().to_owned();
    for m in ["GET", "POST", "PATCH", "DELETE"] {
        assert!(methods.contains(m), "{m} in {methods}");
    }
    let (_, headers) = preflight(&server, "https://evil.example").await;
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
    // A simple request from an allowed origin gets the header and may read the request id.
    let (status, headers, _) = send(&server, Method::GET, "/healthz", None, &[("Origin", ORIGIN)]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some(ORIGIN));
    assert!(header(&headers, "access-control-expose-headers")
        .is_some_and(|h| h.to_ascii_lowercase().contains("x-request-id")));
    drop(server);

    let server = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
    let (_, headers) = preflight(&server, ORIGIN).await;
    let (_, simple, _) = send(&server, Method::GET, "/healthz", None, &[("Origin", ORIGIN)]).await;
    for headers in [headers, simple] {
        let cors: Vec<_> = headers.keys().filter(|k| k.as_str().starts_with("access-control-")).collect();
        assert!(cors.is_empty(), "no CORS header without the setting: {cors:?}");
    }
}
