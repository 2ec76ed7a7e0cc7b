//! ma1sd's REST identity store on its own listener (docs/netsoc.md), driven with exactly the
//! requests ma1sd sends (`Content-Type: application/json; charset=UTF-8`, lower-case keys) and
//! held to the shapes and status codes Netsoc's iamd answers them with: Matrix logins (and
//! each refusal as a non-2xx), the directory, single and bulk 3PID lookups (unknown media
//! never a 5xx), profiles; verified accounts of `compat.workspace` only.

use crate::support::broker::free_port;
use crate::support::server::{ok, TestServer};
use crate::support::TestDb;
use chrono::{Duration, Utc};
use serde_json::{json, Value};

const PASSWORD: &str = "a long enough passphrase";
const BASE: &str = "/_ma1sd/backend/api/v1";

struct Store {
    server: TestServer,
    base: String,
    http: reqwest::Client,
}

impl Store {
    async fn post(&self, path: &str, body: &str) -> (u16, String, Value) {
        let resp = self
            .http
            .post(format!("{}{BASE}{path}", self.base))
            .header("content-type", "application/json; charset=UTF-8")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let media = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        (status, media, resp.json().await.unwrap_or(Value::Null))
    }

    async fn login(&self, localpart: &str, domain: &str, password: &str) -> (u16, Value) {
        let body = json!({"auth": {"mxid": format!("@{localpart}:{domain}"), "localpart": localpart,
            "domain": domain, "password": password}});
        let (status, _, reply) = self.post("/auth/login", &body.to_string()).await;
        (status, reply)
    }
}

async fn store(db: &TestDb) -> Store {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let server = TestServer::spawn(
        db.url(),
        &[
            ("IAMD_BOOTSTRAP_ON_START", "false"),
            ("IAMD_COMPAT_WORKSPACE", "netsoc"),
            ("IAMD_MA1SD_HTTP_ADDRESS", &address),
            ("IAMD_MA1SD_DOMAIN", "netsoc.ie"),
            ("IAMD_ACCOUNTS_RENEWAL_VALIDITY", "8760h"),
        ],
    );
    for ws in ["netsoc", "other"] {
        ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": ws}})).await);
    }
    let renewed = Utc::now().to_rfc3339();
    let lapsed = (Utc::now() - Duration::days(400)).to_rfc3339();
    for (ws, username, email, verified, renewed, first, last) in [
        ("netsoc", "Alice", "Alice@Netsoc.ie", true, renewed.as_str(), "Alice", "Liddell"),
        ("netsoc", "bob", "bob@netsoc.ie", false, renewed.as_str(), "Bob", "Builder"),
        ("netsoc", "carol", "carol@tcd.ie", true, lapsed.as_str(), "Carol", "Alison"),
        ("other", "dave", "dave@netsoc.ie", true, renewed.as_str(), "Dave", "Alington"),
    ] {
        ok(server
            .call(json!({"operation": "create-user", "workspace": ws, "user": {"username": username,
                "password": PASSWORD, "email": email, "verified": verified, "renewed": renewed,
                "first_name": first, "last_name": last}}))
            .await);
    }
    Store { server, base: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_logins_succeed_only_for_verified_renewed_accounts_with_the_right_password() {
    let db = TestDb::new().await;
    let s = store(&db).await;
    let (status, reply) = s.login("alice", "netsoc.ie", PASSWORD).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply,
        json!({"auth": {"success": true, "id": {"type": "localpart", "value": "alice"},
            "profile": {"display_name": "Alice Liddell",
                "three_pids": [{"medium": "email", "address": "Alice@Netsoc.ie"}]}}})
    );
    let failed = json!({"auth": {"success": false, "id": {"type": "", "value": ""}, "profile": {}}});
    for (what, localpart, domain, password, status) in [
        ("wrong password", "alice", "netsoc.ie", "not the passphrase", 401),
        ("unverified", "bob", "netsoc.ie", PASSWORD, 401),
        ("renewal lapsed", "carol", "netsoc.ie", PASSWORD, 401),
        ("unknown", "nobody", "netsoc.ie", PASSWORD, 404),
        ("another workspace's", "dave", "netsoc.ie", PASSWORD, 404),
        ("a foreign domain", "alice", "matrix.org", PASSWORD, 400),
    ] {
        let (got, reply) = s.login(localpart, domain, password).await;
        assert_eq!((got, &reply), (status, &failed), "{what}");
    }
    // An mxid that is not the localpart's.
    let body = json!({"auth": {"mxid": "@bob:netsoc.ie", "localpart": "alice", "domain": "netsoc.ie", "password": PASSWORD}});
    assert_eq!(s.post("/auth/login", &body.to_string()).await.0, 400);
    // An extra key: Go's decoder's words.
    let body = json!({"auth": {"mxid": "@alice:netsoc.ie", "localpart": "alice", "domain": "netsoc.ie",
        "password": PASSWORD, "x": 1}});
    let (status, media, reply) = s.post("/auth/login", &body.to_string()).await;
    assert_eq!((status, media.as_str()), (400, "application/problem+json"));
    assert_eq!(reply, json!({"message": "failed to parse request body: json: unknown field \"x\""}));
    // Audited, as matrix-login, with each reason.
    crate::support::eventually("matrix logins audited", std::time::Duration::from_secs(10), async || {
        let reasons: Vec<String> = db
            .column("SELECT reason FROM authentications WHERE operation = 'matrix-login' AND source = 'ma1sd' ORDER BY id")
            .await;
        reasons == ["ok", "bad-password", "unverified", "renewal-lapsed", "unknown-user", "unknown-user"]
    })
    .await;
    drop(s.server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_and_the_lookups_find_verified_accounts_of_the_workspace_only() {
    let db = TestDb::new().await;
    let s = store(&db).await;
    // By name: a case-insensitive substring of "first last"; verified accounts of the
    // workspace only (bob is unverified, dave is elsewhere).
    let (status, media, reply) =
        s.post("/directory/user/search", &json!({"by": "name", "search_term": "ALI"}).to_string()).await;
    assert_eq!((status, media.as_str()), (200, "application/json"));
    assert_eq!(
        reply,
        json!({"limited": false, "results": [
            {"display_name": "Alice Liddell", "user_id": "alice"},
            {"display_name": "Carol Alison", "user_id": "carol"}]})
    );
    let (_, _, reply) = s
        .post("/directory/user/search", &json!({"by": "threepid", "search_term": "netsoc.IE"}).to_string())
        .await;
    assert_eq!(
        reply,
        json!({"limited": false, "results": [{"display_name": "Alice Liddell", "user_id": "alice"}]})
    );
    let (_, _, reply) =
        s.post("/directory/user/search", &json!({"by": "name", "search_term": "zzz"}).to_string()).await;
    assert_eq!(reply, json!({"limited": false, "results": []}), "results are never null");
    let (_, _, reply) =
        s.post("/directory/user/search", &json!({"by": "name", "search_term": "%"}).to_string()).await;
    assert_eq!(reply["results"], json!([]), "no wildcard");
    assert_eq!(
        s.post("/directory/user/search", &json!({"by": "msisdn", "search_term": "1"}).to_string()).await.0,
        400
    );

    // Single lookups: the stored address, compared case-insensitively.
    let single =
        |medium: &str, address: &str| json!({"lookup": {"medium": medium, "address": address}}).to_string();
    let (status, _, reply) = s.post("/identity/single", &single("email", "alice@netsoc.ie")).await;
    assert_eq!(status, 200);
    assert_eq!(
        reply,
        json!({"lookup": {"medium": "email", "address": "Alice@Netsoc.ie", "id": {"type": "localpart", "value": "alice"}}})
    );
    for (medium, address) in
        [("email", "bob@netsoc.ie"), ("email", "dave@netsoc.ie"), ("msisdn", "353861234567")]
    {
        let (status, _, reply) = s.post("/identity/single", &single(medium, address)).await;
        assert_eq!((status, reply), (404, json!({})), "{medium} {address}");
    }
    // Bulk: the matches only; an unknown medium is skipped, never an error.
    let bulk = json!({"lookup": [
        {"medium": "msisdn", "address": "353861234567"},
        {"medium": "email", "address": "carol@tcd.ie"},
        {"medium": "email", "address": "nobody@netsoc.ie"}]});
    let (status, _, reply) = s.post("/identity/bulk", &bulk.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(
        reply,
        json!({"lookup": [{"medium": "email", "address": "carol@tcd.ie", "id": {"type": "localpart", "value": "carol"}}]})
    );
    assert_eq!(s.post("/identity/bulk", r#"{"lookup": []}"#).await.2, json!({"lookup": []}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_answer_their_one_key_and_404_for_anyone_else() {
    let db = TestDb::new().await;
    let s = store(&db).await;
    let req = |localpart: &str, domain: &str| {
        json!({"mxid": format!("@{localpart}:{domain}"), "localpart": localpart, "domain": domain})
            .to_string()
    };
    let alice = req("alice", "netsoc.ie");
    assert_eq!(
        s.post("/profile/displayName", &alice).await.2,
        json!({"profile": {"display_name": "Alice Liddell"}})
    );
    assert_eq!(
        s.post("/profile/threepids", &alice).await.2,
        json!({"profile": {"threepids": [{"medium": "email", "address": "Alice@Netsoc.ie"}]}})
    );
    assert_eq!(s.post("/profile/roles", &alice).await.2, json!({"profile": {"roles": []}}));
    for other in [
        req("bob", "netsoc.ie"),
        req("nobody", "netsoc.ie"),
        req("dave", "netsoc.ie"),
        req("alice", "matrix.org"),
    ] {
        let (status, _, reply) = s.post("/profile/displayName", &other).await;
        assert_eq!((status, reply), (404, json!({"profile": {}})), "{other}");
    }
    // Not a store path; not JSON.
    assert_eq!(s.post("/nope", "{}").await.0, 404);
    assert_eq!(s.post("/profile/roles", "not json").await.0, 400);
}
