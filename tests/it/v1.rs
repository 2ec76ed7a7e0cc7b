//! Netsoc's `/v1` surface (docs/netsoc.md), driven with each real client's requests as the
//! notes describe them — the Go client's whole-struct PATCH, the dashboard's login with no
//! Content-Type, the accounts UI's `null` and `{}` bodies, the payments server's time with
//! milliseconds — and every answer (status, media type, body) validated against Netsoc's own
//! OpenAPI document with a JSON-schema validator (`support::contract`). Mail goes through a
//! real SMTP server on loopback.

use crate::support::contract::Contract;
use crate::support::server::{ok, TestServer};
use crate::support::smtp::SmtpServer;
use crate::support::TestDb;
use reqwest::Method;
use serde_json::{json, Value};

const ROOT_PASSWORD: &str = "the root passphrase";
const PASSWORD: &str = "hunter2222";

struct V1 {
    server: TestServer,
    http: reqwest::Client,
    contract: Contract,
}

/// One answer: status, media type, body (`Null` when empty).
struct Answer {
    status: u16,
    media: String,
    body: Value,
}

impl Answer {
    fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

impl V1 {
    async fn start(db: &TestDb, smtp: &SmtpServer, extra: &[(&str, &str)]) -> V1 {
        let mut env: Vec<(&str, String)> = smtp.env();
        for (k, v) in [
            ("IAMD_BOOTSTRAP_ON_START", "false"),
            ("IAMD_COMPAT_WORKSPACE", "netsoc"),
            ("IAMD_COMPAT_ROOT_PASSWORD", ROOT_PASSWORD),
            ("IAMD_ACCOUNTS_SELF_REGISTRATION", "true"),
            ("IAMD_ACCOUNTS_REGISTRATION_WORKSPACE", "netsoc"),
            ("IAMD_ACCOUNTS_EMAIL_PATTERN", r"^\S+@tcd\.ie$"),
            ("IAMD_ACCOUNTS_RESERVED_USERNAMES", "admin,staff"),
            ("IAMD_ACCOUNTS_RENEWAL_VALIDITY", "8760h"),
            ("IAMD_PASSWORD_MIN_LENGTH", "8"),
            ("IAMD_HTTP_CORS_ALLOWED_ORIGINS", "https://accounts.netsoc.test"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        {
            env.retain(|(name, _)| *name != k);
            env.push((k, v.to_owned()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let server = TestServer::spawn(db.url(), &env);
        V1 { server, http: reqwest::Client::new(), contract: Contract::load() }
    }

    /// A request as a client sends it; `body` is sent as is with `Content-Type:
    /// application/json` unless `headers` say otherwise.
    async fn send(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.server.base));
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        if let Some(body) = body {
            if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
                req = req.header("content-type", "application/json");
            }
            req = req.body(body.to_owned());
        }
        for (k, v) in headers {
            if !v.is_empty() {
                req = req.header(*k, *v);
            }
        }
        let resp = req.send().await.expect("an answer");
        let status = resp.status().as_u16();
        let media = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let text = resp.text().await.unwrap_or_default();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("a JSON body") };
        Answer { status, media, body }
    }

    /// [`V1::send`] to `/v1{path}`, the answer checked against the document's `template`.
    async fn call(
        &self,
        method: Method,
        template: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        self.call_with(method, template, path, bearer, body, &[]).await
    }

    async fn call_with(
        &self,
        method: Method,
        template: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let answer = self.send(method.clone(), &format!("/v1{path}"), bearer, body, headers).await;
        self.contract.check(method.as_str(), template, answer.status, &answer.media, &answer.body);
        answer
    }

    async fn login(&self, username: &str, password: &str) -> Answer {
        let body = json!({ "password": password }).to_string();
        self.call(
            Method::POST,
            "/users/{username}/login",
            &format!("/users/{username}/login"),
            None,
            Some(&body),
        )
        .await
    }

    async fn token(&self, username: &str, password: &str) -> String {
        let a = self.login(username, password).await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body["token"].as_str().expect("a token").to_owned()
    }

    async fn me(&self, token: &str) -> Answer {
        self.call(Method::GET, "/users/{username}", "/users/self", Some(token), None).await
    }

    async fn validate(&self, token: &str) -> u16 {
        self.call(Method::GET, "/users/self/token", "/users/self/token", Some(token), None).await.status
    }
}

/// A JWT's header and claims, unverified (what webspaced and the accounts UI read).
fn parts(token: &str) -> (Value, Value) {
    use base64::Engine;
    let decode = |i: usize| -> Value {
        let part = token.split('.').nth(i).expect("a JWT");
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap())
            .unwrap()
    };
    (decode(0), decode(1))
}

async fn sign_up(v1: &V1, smtp: &SmtpServer, username: &str, first: &str) -> Value {
    let body = json!({"username": username, "email": format!("{username}@tcd.ie"), "password": PASSWORD,
        "first_name": first, "last_name": "Dude"});
    let a = v1
        .call_with(
            Method::POST,
            "/users",
            "/users",
            None,
            Some(&body.to_string()),
            &[("accept", "text/html")],
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let mail = smtp.wait_for(&format!("{username}@tcd.ie"), 1).pop().expect("a verification mail");
    assert!(mail.body().contains("https://accounts.iamd.test/verify/"), "a link: {}", mail.body());
    // The accounts UI verifies with `{}` and the mailed token.
    let token = mail.token();
    let (header, claims) = parts(&token);
    assert_eq!((header["alg"].as_str(), claims["aud"].clone()), (Some("ES256"), json!(["verification"])));
    assert!(claims.get("is_admin").is_none());
    let path = format!("/users/{username}/login");
    let verified = v1.call(Method::PATCH, "/users/{username}/login", &path, Some(&token), Some("{}")).await;
    assert_eq!(verified.status, 204, "{}", verified.body);
    let again = v1.call(Method::PATCH, "/users/{username}/login", &path, Some(&token), Some("{}")).await;
    assert_eq!(again.status, 401, "a verification token works once");
    a.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_verification_login_and_the_tokens_clients_parse() {
    let db = TestDb::new().await;
    let smtp = SmtpServer::start();
    let v1 = V1::start(&db, &smtp, &[]).await;

    // Sign-up rules: what only admins set, reserved names, the email rule, blanks, conflicts.
    let v1 = &v1;
    let signup = |body: Value| async move {
        v1.call(Method::POST, "/users", "/users", None, Some(&body.to_string())).await
    };
    let base = json!({"username": "bob", "email": "bob@tcd.ie", "password": PASSWORD, "first_name": "Bob",
        "last_name": "Dude"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, status, message) in [
        (with("is_admin", json!(true)), 403, "only admin users can make use of this endpoint"),
        (with("verified", json!(true)), 403, "only admin users can make use of this endpoint"),
        (with("email", json!("bob@gmail.com")), 403, "only admin users can make use of this endpoint"),
        (
            with("username", json!("Staff")),
            403,
            "username is reserved, contact support if this username previously belonged to you",
        ),
        (with("first_name", json!("")), 400, "first_name: cannot be blank."),
        (with("password", json!("short")), 400, "password: the length must be between 8 and 128."),
        (with("x", json!(1)), 400, "failed to parse request body: json: unknown field \"x\""),
    ] {
        let a = signup(body.clone()).await;
        assert_eq!((a.status, a.message()), (status, message), "{body}");
    }

    // Not verified yet: 401 with the exact text, before the body is read.
    let unverified = v1.send(Method::POST, "/v1/users/bob/login", None, Some("{not json"), &[]).await;
    let signed_up = signup(base.clone()).await;
    assert_eq!(signed_up.status, 201, "{}", signed_up.body);
    let bob_id = signed_up.body["id"].as_i64().expect("an integer id");
    assert_eq!(signed_up.body["verified"], false);
    assert_eq!(signed_up.body["renewed"], "0001-01-01T00:00:00Z");
    assert!(signed_up.body.get("ssh_key").is_none() && signed_up.body.get("password").is_none());
    assert_eq!(unverified.status, 404, "bob did not exist yet");
    let unverified = v1.send(Method::POST, "/v1/users/bob/login", None, Some("{not json"), &[]).await;
    assert_eq!((unverified.status, unverified.message()), (401, "email address is not verified"));
    // A reset needs a verified address (401 before any mail).
    let reset = v1.call(Method::PUT, "/users/{username}/login", "/users/bob/login", None, Some("{}")).await;
    assert_eq!((reset.status, reset.message()), (401, "email address is not verified"));
    let taken = signup(with("email", json!("other@tcd.ie"))).await;
    assert_eq!((taken.status, taken.message()), (409, "user with that username already exists"));
    let taken = signup(with("username", json!("bobby"))).await;
    assert_eq!((taken.status, taken.message()), (409, "user with that email already exists"));

    // The UI asks for the mail again with a null body; the token verifies once.
    let resend =
        v1.call(Method::PATCH, "/users/{username}/login", "/users/bob/login", None, Some("null")).await;
    assert_eq!(resend.status, 204, "{}", resend.body);
    let token = smtp.wait_for("bob@tcd.ie", 2).pop().unwrap().token();
    let path = "/users/bob/login";
    let other = v1
        .call(Method::PATCH, "/users/{username}/login", "/users/root/login", Some(&token), Some("{}"))
        .await;
    assert_eq!((other.status, other.message()), (400, "can only verify own account"));
    assert_eq!(
        v1.call(Method::PATCH, "/users/{username}/login", path, Some(&token), Some("{}")).await.status,
        204
    );
    let again = v1.call(Method::PATCH, "/users/{username}/login", path, None, None).await;
    assert_eq!((again.status, again.message()), (400, "email address is already verified"));

    // Logins: dex matches "incorrect password"; the dashboard sends no Content-Type and its
    // old token; unknown users are 404.
    let wrong = v1.login("bob", "not the password").await;
    assert_eq!((wrong.status, wrong.message()), (401, "incorrect password"));
    assert_eq!(v1.login("nobody", PASSWORD).await.status, 404);
    let body = json!({ "password": PASSWORD }).to_string();
    let dashboard = v1
        .call_with(
            Method::POST,
            "/users/{username}/login",
            path,
            Some(&token),
            Some(&body),
            &[("content-type", "")],
        )
        .await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    let token = dashboard.body["token"].as_str().unwrap().to_owned();

    // webspaced's JWT library knows no EdDSA: the token is ES256, with Netsoc's claims.
    let (header, claims) = parts(&token);
    assert_eq!(header["alg"], "ES256");
    assert!(header["kid"].is_string());
    assert_eq!(claims["sub"], json!(bob_id.to_string()));
    assert_eq!(claims["aud"], json!(["auth"]));
    assert_eq!((claims["is_admin"].clone(), claims["version"].as_i64().is_some()), (json!(false), true));
    assert_eq!(claims["iss"], "iamd");
    assert!(claims["nbf"].is_i64() && claims["iat"].is_i64());
    // Never renewed: the token expires in year 1 + 8760h, and the UI shows "Never Renewed".
    assert!(claims["exp"].as_i64().unwrap() < 946_684_800, "{claims}");
    // The key is published in JWKS beside the Ed25519 one.
    let (status, jwks) = v1.server.get("/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    let ec: Vec<&Value> = jwks["keys"].as_array().unwrap().iter().filter(|k| k["kty"] == "EC").collect();
    assert_eq!(
        (ec.len(), ec[0]["crv"].as_str(), ec[0]["kid"].clone()),
        (1, Some("P-256"), header["kid"].clone())
    );

    // An expired token still reads its own account, but is not a valid token.
    let me = v1.me(&token).await;
    assert_eq!((me.status, me.body["username"].as_str()), (200, Some("bob")));
    assert_eq!(v1.validate(&token).await, 401);

    // The root admin (compat.root_password) renews bob as the payments server does.
    let root = v1.token("root", ROOT_PASSWORD).await;
    assert_eq!(parts(&root).1["is_admin"], true);
    assert_eq!(v1.validate(&root).await, 204);
    let renewal = json!({"renewed": "2026-11-30T10:15:30.123Z"}).to_string();
    let renewed =
        v1.call(Method::PATCH, "/users/{username}", "/users/bob", Some(&root), Some(&renewal)).await;
    assert_eq!(
        (renewed.status, renewed.body["renewed"].as_str()),
        (200, Some("0001-01-01T00:00:00Z")),
        "the user as it was"
    );
    let token = v1.token("bob", PASSWORD).await;
    let exp = parts(&token).1["exp"].as_i64().unwrap();
    let renewed_at = chrono::DateTime::parse_from_rfc3339("2026-11-30T10:15:30Z").unwrap().timestamp();
    assert_eq!(exp, renewed_at + 8760 * 3600, "renewed + accounts.renewal_validity");
    assert_eq!(v1.validate(&token).await, 204);
    let me = v1.me(&token).await;
    assert_eq!(me.body["renewed"], "2026-11-30T10:15:30.123Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_may_call_what_and_patch_delete_logout_reset_as_netsoc_does() {
    let db = TestDb::new().await;
    let smtp = SmtpServer::start();
    let v1 = V1::start(&db, &smtp, &[]).await;
    let bob = sign_up(&v1, &smtp, "bob", "Bob").await;
    sign_up(&v1, &smtp, "carol", "Carol").await;
    let root = v1.token("root", ROOT_PASSWORD).await;
    let renew = json!({"renewed": chrono::Utc::now().to_rfc3339()}).to_string();
    for name in ["bob", "carol"] {
        let path = format!("/users/{name}");
        assert_eq!(
            v1.call(Method::PATCH, "/users/{username}", &path, Some(&root), Some(&renew)).await.status,
            200
        );
    }
    let token = v1.token("bob", PASSWORD).await;

    // Admin-only routes refuse a user; a valid admin lists and reads by id.
    for (template, path) in
        [("/users", "/users".to_owned()), ("/users/id:{uid}", format!("/users/id:{}", bob["id"]))]
    {
        let a = v1.call(Method::GET, template, &path, Some(&token), None).await;
        assert_eq!((a.status, a.message()), (403, "only admin users can make use of this endpoint"));
        let a = v1.call(Method::GET, template, &path, Some(&root), None).await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let all = v1.call(Method::GET, "/users", "/users", Some(&root), None).await;
    let names: Vec<&str> =
        all.body.as_array().unwrap().iter().filter_map(|u| u["username"].as_str()).collect();
    assert_eq!(names, ["root", "bob", "carol"]);
    let other = v1.call(Method::GET, "/users/{username}", "/users/carol", Some(&token), None).await;
    assert_eq!(other.status, 403);
    let none = v1.call(Method::GET, "/users/{username}", "/users/nobody", Some(&root), None).await;
    assert_eq!((none.status, none.message()), (404, "user does not exist"));

    // The Go client PATCHes the whole struct: zero values change nothing, the answer is the
    // user as it was; a non-admin may not set admin fields.
    let whole = json!({"id": 0, "username": "", "email": "", "password": null, "first_name": "Robert",
        "last_name": "", "ssh_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHlB5z0xDkd5Z7QWm6c3yG3mQ2e6S8m0Xv9X4tY7pQ1R bob",
        "renewed": "0001-01-01T00:00:00Z", "meta": {"created": "0001-01-01T00:00:00Z", "updated": "0001-01-01T00:00:00Z"}});
    let before = v1
        .call(Method::PATCH, "/users/{username}", "/users/self", Some(&token), Some(&whole.to_string()))
        .await;
    assert_eq!((before.status, before.body["first_name"].as_str()), (200, Some("Bob")), "{}", before.body);
    let after = v1.me(&token).await;
    assert_eq!(
        (after.body["first_name"].as_str(), after.body["last_name"].as_str()),
        (Some("Robert"), Some("Dude"))
    );
    assert!(after.body["ssh_key"].as_str().unwrap().starts_with("ssh-ed25519 "));
    assert_eq!(v1.validate(&token).await, 204, "names and keys keep the token");
    let admin = json!({"is_admin": true}).to_string();
    let refused =
        v1.call(Method::PATCH, "/users/{username}", "/users/self", Some(&token), Some(&admin)).await;
    assert_eq!(refused.status, 403);

    // An admin's change of is_admin bumps the version: the claim webspaced trusts is never stale.
    let promoted = v1.call(Method::PATCH, "/users/{username}", "/users/bob", Some(&root), Some(&admin)).await;
    assert_eq!((promoted.status, promoted.body["is_admin"].clone()), (200, json!(false)));
    assert_eq!(v1.validate(&token).await, 401);
    let token = v1.token("bob", PASSWORD).await;
    assert_eq!(parts(&token).1["is_admin"], true);

    // A password change through PATCH ends every token; logout everywhere too.
    let password = json!({"password": "another passphrase"}).to_string();
    let changed =
        v1.call(Method::PATCH, "/users/{username}", "/users/self", Some(&token), Some(&password)).await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(v1.validate(&token).await, 401);
    let token = v1.token("bob", "another passphrase").await;
    let logout =
        v1.call(Method::DELETE, "/users/{username}/login", "/users/self/login", Some(&token), None).await;
    assert_eq!(logout.status, 204);
    assert_eq!(v1.validate(&token).await, 401);

    // Issued tokens (shh, webspaced): Go durations, checked before the lookup.
    let issue = |duration: &str| json!({ "duration": duration }).to_string();
    for (duration, status) in [("24h", 200), ("1.5h", 200), ("1h30m", 200), ("1d", 400), ("", 400)] {
        let a = v1
            .call(
                Method::POST,
                "/users/{username}/token",
                "/users/carol/token",
                Some(&root),
                Some(&issue(duration)),
            )
            .await;
        assert_eq!(a.status, status, "{duration}: {}", a.body);
    }
    let missing = v1
        .call(Method::POST, "/users/{username}/token", "/users/nobody/token", Some(&root), Some(&issue("1d")))
        .await;
    assert_eq!(missing.status, 400, "the duration is parsed before the lookup");
    let issued = v1
        .call(Method::POST, "/users/{username}/token", "/users/carol/token", Some(&root), Some(&issue("1s")))
        .await;
    let short = issued.body["token"].as_str().unwrap().to_owned();
    let carol = v1.token("carol", PASSWORD).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(v1.validate(&short).await, 401, "expired");
    assert_eq!(v1.me(&short).await.status, 200, "an expired token still reads its own account");

    // Reset: a mail (body ignored), then the token with the new password, once.
    let ask = v1.call(Method::PUT, "/users/{username}/login", "/users/carol/login", None, Some("{}")).await;
    assert_eq!(ask.status, 204, "{}", ask.body);
    let reset = smtp.wait_for("carol@tcd.ie", 2).pop().unwrap().token();
    assert_eq!(parts(&reset).1["aud"], json!(["password_reset"]));
    let put = |bearer: String, body: Value| {
        let v1 = &v1;
        async move {
            v1.call(
                Method::PUT,
                "/users/{username}/login",
                "/users/carol/login",
                Some(&bearer),
                Some(&body.to_string()),
            )
            .await
        }
    };
    let a = put(reset.clone(), json!({})).await;
    assert_eq!((a.status, a.message()), (400, "password is required"));
    assert_eq!(put(reset.clone(), json!({"password": "short"})).await.status, 400);
    assert_eq!(put(reset.clone(), json!({"password": "a brand new passphrase"})).await.status, 204);
    assert_eq!(put(reset, json!({"password": "yet another passphrase"})).await.status, 401, "once");
    assert_eq!(v1.validate(&carol).await, 401, "a reset ends every token");
    let carol = v1.token("carol", "a brand new passphrase").await;

    // DELETE answers the deleted user; its token then finds no user (404 everywhere).
    let gone = v1.call(Method::DELETE, "/users/{username}", "/users/self", Some(&carol), None).await;
    assert_eq!((gone.status, gone.body["username"].as_str()), (200, Some("carol")));
    assert_eq!(v1.me(&carol).await.status, 404);
    // Upstream's code answers 404 here too (its document lists only 401 for this route).
    let gone = v1.send(Method::GET, "/v1/users/self/token", Some(&carol), None, &[]).await;
    assert_eq!(
        (gone.status, gone.message(), gone.media.as_str()),
        (404, "user does not exist", "application/problem+json")
    );

    // An email change unverifies the account, ends its tokens and mails a verification.
    let bob = v1.token("bob", "another passphrase").await;
    let email = json!({"email": "robert@tcd.ie"}).to_string();
    let changed = v1.call(Method::PATCH, "/users/{username}", "/users/self", Some(&bob), Some(&email)).await;
    assert_eq!((changed.status, changed.body["email"].as_str()), (200, Some("bob@tcd.ie")), "as it was");
    let mail = smtp.wait_for("robert@tcd.ie", 1).pop().expect("a verification mail to the new address");
    assert_eq!(parts(&mail.token()).0["alg"], "ES256");
    assert_eq!(v1.validate(&bob).await, 401);
    let again = v1.login("bob", "another passphrase").await;
    assert_eq!((again.status, again.message()), (401, "email address is not verified"));
    // An expired admin is no admin: another user's account, or a sign-up on its behalf, is refused.
    let admin_short = v1
        .call(Method::POST, "/users/{username}/token", "/users/root/token", Some(&root), Some(&issue("1s")))
        .await;
    let admin_short = admin_short.body["token"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let other = v1.call(Method::GET, "/users/{username}", "/users/bob", Some(&admin_short), None).await;
    assert_eq!(other.status, 403);
    let body = json!({"username": "frank", "email": "frank@tcd.ie", "password": PASSWORD, "first_name": "F",
        "last_name": "F"})
    .to_string();
    let created = v1.call(Method::POST, "/users", "/users", Some(&admin_short), Some(&body)).await;
    assert_eq!(created.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_bearers_cors_and_other_workspaces_answer_as_netsocs_iamd() {
    let db = TestDb::new().await;
    let smtp = SmtpServer::start();
    let v1 = V1::start(&db, &smtp, &[]).await;
    for ws in ["other"] {
        ok(v1.server.call(json!({"operation": "create-workspace", "workspace_record": {"id": ws}})).await);
    }
    ok(v1
        .server
        .call(json!({"operation": "create-user", "workspace": "other", "user": {"username": "dave",
            "password": PASSWORD, "email": "dave@tcd.ie", "verified": true}}))
        .await);
    let root = v1.token("root", ROOT_PASSWORD).await;

    let health = v1.send(Method::GET, "/health", None, None, &[]).await;
    assert_eq!((health.status, health.body.clone()), (204, Value::Null));
    assert_eq!(v1.send(Method::POST, "/health", None, None, &[]).await.status, 204);
    // A bearer that is not a JWT: 401 everywhere, /health and login included.
    for (method, path) in
        [(Method::GET, "/health"), (Method::POST, "/v1/users/root/login"), (Method::GET, "/v1/users/self")]
    {
        let a = v1.send(method, path, Some("not-a-jwt"), Some("{}"), &[]).await;
        assert_eq!((a.status, a.media.as_str()), (401, "application/problem+json"), "{path}");
    }
    let nowhere = v1.send(Method::GET, "/v1/nowhere", None, None, &[]).await;
    assert_eq!(
        (nowhere.status, nowhere.message(), nowhere.media.as_str()),
        (404, "API endpoint not found", "application/problem+json")
    );
    let wrong = v1.send(Method::PUT, "/v1/users", None, None, &[]).await;
    assert_eq!((wrong.status, wrong.message()), (405, "method not allowed on API endpoint"));
    let wrong = v1.send(Method::GET, "/v1/users/root/token", Some(&root), None, &[]).await;
    assert_eq!(wrong.status, 405, "only self's token is validated");
    let required = v1.call(Method::GET, "/users/{username}", "/users/self", None, None).await;
    assert_eq!((required.status, required.message()), (401, "a valid token is required for this endpoint"));

    // Other workspaces are invisible through /v1, an iamd token is no /v1 token.
    assert_eq!(v1.login("dave", PASSWORD).await.status, 404);
    let dave = v1.call(Method::GET, "/users/{username}", "/users/dave", Some(&root), None).await;
    assert_eq!(dave.status, 404);
    let iamd = v1.server.jwt("dave", PASSWORD).await;
    assert_eq!(v1.validate(&iamd).await, 401);

    // iamd's own states hold on /v1 too: a disabled account's token and login are refused.
    let gina = ok(v1
        .server
        .call(json!({"operation": "create-user", "workspace": "netsoc", "user": {"username": "gina",
            "password": PASSWORD, "email": "gina@tcd.ie", "verified": true,
            "renewed": chrono::Utc::now().to_rfc3339()}}))
        .await);
    let token = v1.token("gina", PASSWORD).await;
    assert_eq!(v1.validate(&token).await, 204);
    ok(v1.server.call(json!({"operation": "disable-user", "user_id": gina["user"]["id"]})).await);
    assert_eq!(v1.validate(&token).await, 401);
    assert_eq!(v1.me(&token).await.status, 401);
    assert_eq!(v1.login("gina", PASSWORD).await.status, 401);

    // The accounts UI runs on another origin: CORS preflights for its methods pass.
    let preflight = v1
        .http
        .request(Method::OPTIONS, format!("{}/v1/users/bob/login", v1.server.base))
        .header("origin", "https://accounts.netsoc.test")
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
        Some("https://accounts.netsoc.test")
    );
}
