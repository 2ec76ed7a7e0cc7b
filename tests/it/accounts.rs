//! People's accounts as Netsoc's iamd has them (docs/accounts.md), over the protocol and REST:
//! renewal-based expiry and what a lapsed token may still do, self-service on one's own
//! account, self-registration and its rules, email verification and password reset against
//! a real SMTP server on loopback (aiosmtpd, `support::smtp`), a stopped server's reported
//! failure, and the cleanup job.

use crate::support::server::{error_type, ok, TestServer};
use crate::support::smtp::SmtpServer;
use crate::support::TestDb;
use chrono::{DateTime, Duration, Utc};
use reqwest::Method;
use serde_json::{json, Value};

const PASSWORD: &str = "a long enough passphrase";

fn env<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn workspace(server: &TestServer, id: &str) {
    ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": id}})).await);
}

async fn rest(
    server: &TestServer,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let body = (!body.is_null()).then(|| body.to_string());
    server.request(method, path, bearer, body, &[]).await
}

/// The claims of a JWT, unverified (what a client reads).
fn claims(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The events of `event_type` in the log, as (payload, metadata).
async fn events(db: &TestDb, event_type: &str) -> Vec<(Value, Value)> {
    let client = db.pool().get().await.unwrap();
    client
        .query("SELECT payload, metadata FROM events WHERE event_type = $1 ORDER BY position", &[&event_type])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_sets_a_logins_expiry_and_a_lapsed_token_only_looks_after_its_own_account() {
    let db = TestDb::new().await;
    let server = TestServer::spawn(
        db.url(),
        &[("IAMD_BOOTSTRAP_ON_START", "false"), ("IAMD_ACCOUNTS_RENEWAL_VALIDITY", "8760h")],
    );
    workspace(&server, "acme").await;
    let renewed_at = Utc::now() - Duration::days(10);
    let renewed = ok(server
        .call(json!({"operation": "create-user", "workspace": "acme", "user": {"username": "paid",
            "password": PASSWORD, "roles": ["reader"], "renewed": renewed_at.to_rfc3339()}}))
        .await)["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let never = server.create_user("acme", "never", PASSWORD, &["reader"]).await;
    let other = server.create_user("acme", "other", PASSWORD, &["reader"]).await;

    // A renewed account: exp = renewed + validity, exactly.
    let login =
        ok(server.call(json!({"operation": "login", "username": "paid", "password": PASSWORD})).await);
    let token = login["jwt"].as_str().unwrap().to_owned();
    let exp = claims(&token)["exp"].as_i64().unwrap();
    assert_eq!(exp, (renewed_at + Duration::hours(8760)).timestamp(), "{login}");
    let validated = ok(server.call(json!({"operation": "validate-token", "token": token})).await);
    assert_eq!(validated["resolved_user_id"], renewed.as_str());
    assert!(validated.get("resolved_renewal_lapsed").is_none(), "{validated}");

    // Never renewed: the token has expired already (year 2, as Netsoc's clients expect).
    let login =
        ok(server.call(json!({"operation": "login", "username": "never", "password": PASSWORD})).await);
    assert!(login["jwt_expires"].as_str().unwrap().starts_with("0002-01-01"), "{login}");
    let lapsed = login["jwt"].as_str().unwrap().to_owned();
    assert!(
        claims(&lapsed)["exp"].as_i64().unwrap()
            < DateTime::parse_from_rfc3339("2000-01-01T00:00:00Z").unwrap().timestamp()
    );

    // It still reads, edits and logs out its own account...
    let own = format!("/api/v1/workspaces/acme/users/{never}");
    let (status, me) = rest(&server, Method::GET, &own, Some(&lapsed), Value::Null).await;
    assert_eq!((status, me["username"].as_str()), (200, Some("never")), "{me}");
    let (status, me) = rest(&server, Method::PATCH, &own, Some(&lapsed), json!({"first_name": "Nev"})).await;
    assert_eq!((status, me["first_name"].as_str()), (200, Some("Nev")), "{me}");
    let (status, _) = rest(&server, Method::GET, "/api/v1/auth/whoami", Some(&lapsed), Value::Null).await;
    assert_eq!(status, 200);
    // ...and nothing else: another user, a list, its keys; and no service takes it as valid.
    let refused = "the account's renewal has lapsed";
    for (method, path, body) in [
        (Method::GET, format!("/api/v1/workspaces/acme/users/{other}"), Value::Null),
        (Method::GET, "/api/v1/workspaces/acme/users".to_owned(), Value::Null),
        (Method::POST, format!("/api/v1/workspaces/acme/users/{never}/api-keys"), json!({"name": "k"})),
    ] {
        let (status, body) = rest(&server, method.clone(), &path, Some(&lapsed), body).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert!(body.to_string().contains(refused), "{method} {path}: {body}");
    }
    let (status, _) = rest(&server, Method::GET, "/api/v1/auth/validate", Some(&lapsed), Value::Null).await;
    assert_eq!(status, 401, "a lapsed token is no valid token");
    assert_eq!(
        error_type(&server.call(json!({"operation": "validate-token", "token": lapsed})).await),
        "auth-failed"
    );
    ok(server
        .call(json!({"operation": "create-user", "workspace": "acme", "user": {"username": "boss",
            "password": PASSWORD, "roles": ["admin"], "renewed": Utc::now().to_rfc3339()}}))
        .await);
    let boss = server.jwt("boss", PASSWORD).await;
    let (_, inactive) = server
        .request(
            Method::POST,
            "/api/v1/auth/introspect",
            Some(&boss),
            Some(json!({"token": lapsed}).to_string()),
            &[],
        )
        .await;
    assert_eq!(inactive, json!({"active": false}));

    // An issued token of the never-renewed account is good, and says the renewal lapsed.
    let issued =
        ok(server.call(json!({"operation": "issue-token", "user_id": never, "duration": "1h"})).await);
    let checked = ok(server
        .call(json!({"operation": "validate-token", "token": issued["jwt"].as_str().unwrap()}))
        .await);
    assert_eq!(checked["resolved_renewal_lapsed"], true, "{checked}");

    // Renewing (an admin's change) neither ends a session nor needs a new login to count.
    let (status, _) =
        rest(&server, Method::PATCH, &own, Some(&boss), json!({"renewed": Utc::now().to_rfc3339()})).await;
    assert_eq!(status, 200);
    let fresh = server.jwt("never", PASSWORD).await;
    assert!(claims(&fresh)["exp"].as_i64().unwrap() > (Utc::now() + Duration::days(364)).timestamp());
    assert_eq!(rest(&server, Method::GET, "/api/v1/auth/validate", Some(&fresh), Value::Null).await.0, 204);

    // Logging out everywhere works with the lapsed token too, and kills both.
    let (status, body) =
        rest(&server, Method::POST, "/api/v1/auth/logout-all", Some(&lapsed), Value::Null).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(rest(&server, Method::GET, "/api/v1/auth/whoami", Some(&lapsed), Value::Null).await.0, 401);
    assert_eq!(rest(&server, Method::GET, "/api/v1/auth/validate", Some(&fresh), Value::Null).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_renewal_a_login_lives_jwt_ttl_and_an_expired_token_is_nothing() {
    let db = TestDb::new().await;
    let server = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false"), ("IAMD_JWT_TTL", "2h")]);
    workspace(&server, "acme").await;
    server.create_user("acme", "ann", PASSWORD, &["reader"]).await;
    let token = server.jwt("ann", PASSWORD).await;
    let c = claims(&token);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 7200);
    assert!(c.get("token_use").is_none(), "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_look_after_their_own_account_but_never_raise_their_own_rights() {
    let db = TestDb::new().await;
    let server = TestServer::spawn(
        db.url(),
        &[("IAMD_BOOTSTRAP_ON_START", "false"), ("IAMD_ACCOUNTS_RESERVED_USERNAMES", "root,Postmaster")],
    );
    workspace(&server, "acme").await;
    let me = server.create_user("acme", "me", PASSWORD, &["reader"]).await;
    let other = server.create_user("acme", "other", PASSWORD, &["reader"]).await;
    let token = server.jwt("me", PASSWORD).await;
    let own = format!("/api/v1/workspaces/acme/users/{me}");
    assert_eq!(rest(&server, Method::GET, &own, Some(&token), Value::Null).await.0, 200);
    let (status, body) =
        rest(&server, Method::PATCH, &own, Some(&token), json!({"last_name": "Self", "ssh_key": ""})).await;
    assert_eq!((status, body["last_name"].as_str()), (200, Some("Self")), "{body}");
    for escalation in [
        json!({"roles": ["admin"]}),
        json!({"enabled": false}),
        json!({"verified": true}),
        json!({"renewed": "2030-01-01T00:00:00Z"}),
    ] {
        let (status, body) = rest(&server, Method::PATCH, &own, Some(&token), escalation.clone()).await;
        assert_eq!(status, 403, "{escalation}: {body}");
    }
    // A reserved name (case-insensitive), for a user; an admin may give it.
    let (status, body) =
        rest(&server, Method::PATCH, &own, Some(&token), json!({"username": "POSTMASTER"})).await;
    assert_eq!((status, error_type(&body)), (403, "operation-not-permitted"), "{body}");
    let renamed = server
        .call(json!({"operation": "update-user", "workspace": "acme", "user_id": other, "user": {"username": "root"}}))
        .await;
    assert_eq!(ok(renamed)["user"]["username"], "root");
    let others = format!("/api/v1/workspaces/acme/users/{other}");
    assert_eq!(rest(&server, Method::GET, &others, Some(&token), Value::Null).await.0, 403);
    assert_eq!(rest(&server, Method::DELETE, &others, Some(&token), Value::Null).await.0, 403);
    assert_eq!(rest(&server, Method::DELETE, &own, Some(&token), Value::Null).await.0, 204);
    let gone = server.call(json!({"operation": "get-user", "user_id": me})).await;
    assert_eq!(error_type(&gone), "not-found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_registration_is_off_by_default_and_holds_registrants_to_the_rules() {
    let db = TestDb::new().await;
    let register = json!({"username": "newbie", "password": PASSWORD, "email": "newbie@example.org"});
    {
        let server = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
        workspace(&server, "default").await;
        let (status, _) = rest(&server, Method::POST, "/api/v1/auth/register", None, register.clone()).await;
        assert_eq!(status, 401, "off by default");
        let (status, _) = server
            .post(
                None,
                &json!({"operation": "create-user", "workspace": "default", "user": register}).to_string(),
            )
            .await;
        assert_eq!(status, 401);
    }
    let server = TestServer::spawn(
        db.url(),
        &[
            ("IAMD_BOOTSTRAP_ON_START", "false"),
            ("IAMD_ACCOUNTS_SELF_REGISTRATION", "true"),
            ("IAMD_ACCOUNTS_REGISTRATION_WORKSPACE", "default"),
            ("IAMD_ACCOUNTS_EMAIL_PATTERN", "@example\\.org$"),
            ("IAMD_ACCOUNTS_RESERVED_USERNAMES", "root,admin"),
            ("IAMD_PASSWORD_MIN_LENGTH", "8"),
        ],
    );
    workspace(&server, "acme").await;
    let refused = [
        (json!({"username": "Root", "password": PASSWORD, "email": "r@example.org"}), 403),
        (json!({"username": "evil", "password": PASSWORD, "email": "evil@elsewhere.net"}), 403),
        (
            json!({"username": "evil", "password": PASSWORD, "email": "e@example.org", "roles": ["admin"]}),
            403,
        ),
        (json!({"username": "evil", "password": PASSWORD, "email": "e@example.org", "verified": true}), 403),
        (
            json!({"username": "evil", "password": PASSWORD, "email": "e@example.org", "workspace": "acme"}),
            403,
        ),
        (json!({"username": "evil", "password": PASSWORD}), 400),
        (json!({"username": "evil", "password": "short", "email": "e@example.org"}), 422),
    ];
    for (body, expected) in refused {
        let (status, reply) = rest(&server, Method::POST, "/api/v1/auth/register", None, body.clone()).await;
        assert_eq!(status, expected, "{body}: {reply}");
    }
    // Netsoc's 8-character minimum, when configured so.
    let (status, user) = rest(
        &server,
        Method::POST,
        "/api/v1/auth/register",
        None,
        json!({"username": "newbie", "password": "eight ch", "email": "Newbie@Example.org"}),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(
        (user["workspace"].as_str(), user["roles"].clone(), user["verified"].clone()),
        (Some("default"), json!([]), json!(false))
    );
    let created = events(&db, "user.created").await;
    let registered = created.iter().find(|(p, _)| p["username"] == "newbie").unwrap();
    assert_eq!(registered.0["self_registered"], true, "{registered:?}");
    assert_eq!(registered.1["actor"], "", "nobody proven: no actor");
    assert!(created
        .iter()
        .filter(|(p, _)| p["username"] != "newbie")
        .all(|(p, _)| p.get("self_registered").is_none()));
    // The email is taken, case-insensitively.
    let (status, _) = rest(
        &server,
        Method::POST,
        "/api/v1/auth/register",
        None,
        json!({"username": "second", "password": PASSWORD, "email": "newbie@example.ORG"}),
    )
    .await;
    assert_eq!(status, 409);
    // The gateway and admins are not held to the pattern or the reserved names.
    let by_gateway = server
        .call(json!({"operation": "create-user", "workspace": "acme", "user": {"username": "admin", "password": PASSWORD, "email": "a@elsewhere.net"}}))
        .await;
    ok(by_gateway);
}

/// Verification end to end: a mail on creation with the raw token (the link with `Accept:
/// text/html`), the token works once and ends the account's sessions, an email change makes
/// the account unverified and mails again; requests for a mail answer alike for anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_is_verified_with_the_token_its_mail_carried_once() {
    let db = TestDb::new().await;
    let smtp = SmtpServer::start();
    let mut settings = smtp.env();
    settings.extend([
        ("IAMD_BOOTSTRAP_ON_START", "false".to_owned()),
        ("IAMD_ACCOUNTS_SELF_REGISTRATION", "true".to_owned()),
        ("IAMD_MAIL_SUBJECT_PREFIX", "Netsoc".to_owned()),
    ]);
    let server = TestServer::spawn(db.url(), &env(&settings));
    workspace(&server, "default").await;

    // An admin-created account with an address gets the raw token.
    let created = ok(server
        .call(json!({"operation": "create-user", "workspace": "default", "user": {"username": "ada",
            "password": PASSWORD, "email": "ada@example.org", "first_name": "Ada", "last_name": "Lovelace",
            "roles": ["reader"]}}))
        .await);
    let ada = created["user"]["id"].as_str().unwrap().to_owned();
    let mail = smtp.wait_for("ada@example.org", 1).remove(0);
    assert_eq!(mail.header("Subject").as_deref(), Some("Netsoc account verification"));
    assert_eq!(mail.header("From").as_deref(), Some("Accounts <accounts@iamd.test>"));
    assert_eq!(mail.header("Reply-To").as_deref(), Some("help@iamd.test"));
    assert_eq!(mail.header("To").as_deref(), Some("\"Ada Lovelace\" <ada@example.org>"));
    let token = mail.token();
    assert!(!mail.body().contains("https://"), "no link unless HTML was asked for: {}", mail.body());
    assert_eq!(claims(&token)["aud"], "verification");

    // The token is no bearer.
    assert_eq!(rest(&server, Method::GET, "/api/v1/auth/whoami", Some(&token), Value::Null).await.0, 401);
    let session = server.jwt("ada", PASSWORD).await;
    let (status, body) =
        rest(&server, Method::POST, "/api/v1/auth/verify", None, json!({"token": token})).await;
    assert_eq!(status, 204, "{body}");
    let user = ok(server.call(json!({"operation": "get-user", "user_id": ada})).await);
    assert_eq!(user["user"]["verified"], true);
    assert_eq!(rest(&server, Method::GET, "/api/v1/auth/whoami", Some(&session), Value::Null).await.0, 401);
    let (status, body) =
        rest(&server, Method::POST, "/api/v1/auth/verify", None, json!({"token": token})).await;
    assert_eq!((status, error_type(&body)), (401, "auth-failed"), "single-use: {body}");

    // A self-registration asking for HTML gets a link; the protocol verifies with it.
    let (status, user) = server
        .request(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"username": "bob", "password": PASSWORD, "email": "bob@example.org"}).to_string()),
            &[("accept", "text/html,application/xhtml+xml;q=0.9")],
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let mail = smtp.wait_for("bob@example.org", 1).remove(0);
    let link = mail.body().lines().find(|l| l.starts_with("https://")).unwrap().to_owned();
    assert!(link.starts_with("https://accounts.iamd.test/verify/ey"), "{link}");
    let token = mail.token();
    assert_eq!(link, format!("https://accounts.iamd.test/verify/{token}"));
    ok(server.call(json!({"operation": "verify-email", "token": token})).await);
    let replay = server.call(json!({"operation": "verify-email", "token": token})).await;
    assert_eq!(error_type(&replay), "auth-failed");

    // An email change: unverified again, a new mail; the old address's tokens are dead.
    let changed = ok(server
        .call(json!({"operation": "update-user", "user_id": ada, "user": {"email": "ada@new.example.org"}}))
        .await);
    assert_eq!(changed["user"]["verified"], false);
    let mail = smtp.wait_for("ada@new.example.org", 1).remove(0);
    ok(server.call(json!({"operation": "verify-email", "token": mail.token()})).await);

    // Asking again: one mail for an unverified account; none, and the same answer, for a
    // verified one, an unknown one.
    let carol = ok(server
        .call(json!({"operation": "create-user", "workspace": "default", "user": {"username": "carol",
            "password": PASSWORD, "email": "carol@example.org"}}))
        .await)["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    smtp.wait_for("carol@example.org", 1);
    for name in ["carol", "ada", "nobody"] {
        let (status, body) =
            rest(&server, Method::POST, "/api/v1/auth/verification", None, json!({"username": name})).await;
        assert_eq!(status, 204, "{name}: {body}");
    }
    smtp.wait_for("carol@example.org", 2);
    let sent = events(&db, "mail.sent").await;
    assert_eq!(sent.len(), 5, "{sent:?}");
    assert!(sent.iter().all(|(p, _)| p["purpose"] == "verification" && p.get("failure").is_none()));
    assert_eq!(sent.iter().filter(|(p, _)| p["user_id"] == carol.as_str()).count(), 2);
    assert_eq!(sent.iter().filter(|(p, _)| p["user_id"] == ada.as_str()).count(), 2);

    // Audited: every verification attempt, with its outcome.
    let pool = db.pool();
    crate::support::eventually("verify-email audited", std::time::Duration::from_secs(10), async || {
        let client = pool.get().await.unwrap();
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE outcome = 'success'), count(*) FILTER (WHERE reason = 'stale-token') \
                 FROM authentications WHERE operation = 'verify-email'",
                &[],
            )
            .await
            .unwrap();
        (row.get::<_, i64>(0), row.get::<_, i64>(1)) == (3, 2)
    })
    .await;
    let dump = db.dump();
    assert!(!dump.contains(&token), "the token is never stored");
}

/// Password reset end to end: only a verified account gets a mail; the token sets a password
/// that passes the policy (a weak one leaves it usable), once, ending every session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_reset_with_the_token_its_mail_carried_once() {
    let db = TestDb::new().await;
    let smtp = SmtpServer::start();
    let mut settings = smtp.env();
    settings.push(("IAMD_BOOTSTRAP_ON_START", "false".to_owned()));
    let server = TestServer::spawn(db.url(), &env(&settings));
    workspace(&server, "acme").await;
    let user = |name: &str, verified: bool| {
        json!({"operation": "create-user", "workspace": "acme", "user": {"username": name,
            "password": PASSWORD, "email": format!("{name}@example.org"), "verified": verified, "roles": ["reader"]}})
    };
    ok(server.call(user("dora", true)).await);
    ok(server.call(user("ulf", false)).await);
    smtp.wait_for("ulf@example.org", 1);

    for name in ["ulf", "dora", "nobody"] {
        let (status, body) =
            rest(&server, Method::POST, "/api/v1/auth/password-reset", None, json!({"username": name})).await;
        assert_eq!(status, 204, "{name}: {body}");
    }
    let mail = smtp.wait_for("dora@example.org", 1).remove(0);
    assert_eq!(mail.header("Subject").as_deref(), Some("iamd account password reset"));
    let token = mail.token();
    assert_eq!(claims(&token)["aud"], "password_reset");
    assert_eq!(smtp.wait_for("ulf@example.org", 1).len(), 1, "an unverified account gets no reset mail");
    let session = server.jwt("dora", PASSWORD).await;

    // A verification token is no reset token, nor the other way round.
    let verify = server.call(json!({"operation": "verify-email", "token": token})).await;
    assert_eq!(error_type(&verify), "auth-failed");
    let complete = |token: &str, password: &str| json!({"token": token, "new_password": password});
    let (status, body) =
        rest(&server, Method::POST, "/api/v1/auth/password-reset/complete", None, complete(&token, "short"))
            .await;
    assert_eq!((status, error_type(&body)), (422, "weak-password"), "{body}");
    let (status, body) = rest(
        &server,
        Method::POST,
        "/api/v1/auth/password-reset/complete",
        None,
        complete(&token, "a brand new passphrase"),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(rest(&server, Method::GET, "/api/v1/auth/whoami", Some(&session), Value::Null).await.0, 401);
    let old = server.call(json!({"operation": "login", "username": "dora", "password": PASSWORD})).await;
    assert_eq!(error_type(&old), "auth-failed");
    ok(server
        .call(json!({"operation": "login", "username": "dora", "password": "a brand new passphrase"}))
        .await);
    let (status, _) = rest(
        &server,
        Method::POST,
        "/api/v1/auth/password-reset/complete",
        None,
        complete(&token, "yet another passphrase"),
    )
    .await;
    assert_eq!(status, 401, "single-use");
    // Over the protocol too, with a link this time.
    ok(server
        .call(json!({"operation": "request-password-reset", "username": "dora", "email_link": true}))
        .await);
    let mail = smtp.wait_for("dora@example.org", 2).remove(1);
    assert!(
        mail.body().contains(&format!("https://accounts.iamd.test/reset?t={}", mail.token())),
        "{}",
        mail.body()
    );
    ok(server
        .call(json!({"operation": "complete-password-reset", "token": mail.token(), "new_password": "the third passphrase"}))
        .await);
    assert!(!db.dump().contains(&token), "the token is never stored");
}

/// A stopped SMTP server: the account is created (and shown), the caller learns the mail
/// failed, the failure is an event; asking for a mail fails the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_that_cannot_be_sent_is_reported_and_audited_and_the_account_stays() {
    let db = TestDb::new().await;
    let mut smtp = SmtpServer::start();
    let mut settings = smtp.env();
    settings.push(("IAMD_BOOTSTRAP_ON_START", "false".to_owned()));
    settings.push(("IAMD_ACCOUNTS_SELF_REGISTRATION", "true".to_owned()));
    let server = TestServer::spawn(db.url(), &env(&settings));
    workspace(&server, "default").await;
    smtp.stop();

    let (status, body) = rest(
        &server,
        Method::POST,
        "/api/v1/auth/register",
        None,
        json!({"username": "eve", "password": PASSWORD, "email": "eve@example.org"}),
    )
    .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(error_type(&body), "internal-error");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("verification mail could not be sent"),
        "{body}"
    );
    assert_eq!(body["user"]["email"], "eve@example.org");
    let id = body["user"]["id"].as_str().expect("the reply shows the account").to_owned();
    ok(server.call(json!({"operation": "get-user", "user_id": id})).await);
    let reply = server.call(json!({"operation": "request-verification", "user_id": id})).await;
    assert_eq!(error_type(&reply), "internal-error");
    let sent = events(&db, "mail.sent").await;
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|(p, _)| p["failure"] == "connection"), "{sent:?}");
    assert!(!db.dump().contains("eyJ"), "no token is stored");
}

/// `smtp.tls` requires STARTTLS: a server that does not offer it gets no mail in the clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_when_required_is_never_skipped() {
    let db = TestDb::new().await;
    let smtp = SmtpServer::start();
    let mut settings = smtp.env();
    settings.retain(|(k, _)| *k != "IAMD_SMTP_TLS");
    settings.push(("IAMD_BOOTSTRAP_ON_START", "false".to_owned()));
    let server = TestServer::spawn(db.url(), &env(&settings));
    workspace(&server, "acme").await;
    let reply = server
        .call(json!({"operation": "create-user", "workspace": "acme", "user": {"username": "hal",
            "password": PASSWORD, "email": "hal@example.org"}}))
        .await;
    assert_eq!(error_type(&reply), "internal-error", "{reply}");
    assert_eq!(reply["user"]["username"], "hal", "{reply}");
    assert!(smtp.mails().is_empty(), "nothing went out in the clear");
    assert_eq!(events(&db, "mail.sent").await[0].0["failure"], "connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_no_mail_is_sent_and_asking_for_one_says_why() {
    let db = TestDb::new().await;
    let server = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
    workspace(&server, "acme").await;
    ok(server
        .call(json!({"operation": "create-user", "workspace": "acme", "user": {"username": "fay",
            "password": PASSWORD, "email": "fay@example.org"}}))
        .await);
    let reply = server.call(json!({"operation": "request-verification", "username": "fay"})).await;
    assert_eq!(error_type(&reply), "operation-not-permitted");
    assert!(reply["error"]["message"].as_str().unwrap().contains("smtp.host"), "{reply}");
    assert!(events(&db, "mail.sent").await.is_empty());
}

/// The cleanup job deletes self-registered accounts still unverified once older than
/// `cleanup.max_age`, with the reason, and nothing else; one process at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_deletes_only_old_unverified_self_registered_accounts() {
    let db = TestDb::new().await;
    let server = TestServer::spawn(
        db.url(),
        &[
            ("IAMD_BOOTSTRAP_ON_START", "false"),
            ("IAMD_ACCOUNTS_SELF_REGISTRATION", "true"),
            ("IAMD_CLEANUP_INTERVAL", "1s"),
            ("IAMD_CLEANUP_MAX_AGE", "3s"),
        ],
    );
    workspace(&server, "default").await;
    let register = |name: &str| {
        let (server, body) = (
            &server,
            json!({"username": name, "password": PASSWORD, "email": format!("{name}@example.org")}),
        );
        async move {
            let (status, user) = rest(server, Method::POST, "/api/v1/auth/register", None, body).await;
            assert_eq!(status, 201, "{user}");
            user["id"].as_str().unwrap().to_owned()
        }
    };
    let stale = register("stale").await;
    let proven = register("proven").await;
    ok(server.call(json!({"operation": "update-user", "user_id": proven, "user": {"verified": true}})).await);
    server.create_user("default", "made", PASSWORD, &["reader"]).await;

    crate::support::eventually("the stale account deleted", std::time::Duration::from_secs(20), async || {
        error_type(&server.call(json!({"operation": "get-user", "user_id": stale})).await) == "not-found"
    })
    .await;
    let deleted = events(&db, "user.deleted").await;
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0].0["reason"], "unverified-expired");
    assert_eq!(deleted[0].1["actor"], "system");
    ok(server.call(json!({"operation": "get-user", "user_id": proven})).await);
    let listed = ok(server.call(json!({"operation": "list-users", "workspace": "default"})).await);
    assert_eq!(listed["users"].as_array().unwrap().len(), 2, "{listed}");

    // While another process holds the job's lock, a run skips.
    let young = register("young").await;
    let mut holder = db.pool().get().await.unwrap();
    let tx = holder.transaction().await.unwrap();
    tx.execute("SELECT pg_advisory_xact_lock(7593470724655574640)", &[]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    ok(server.call(json!({"operation": "get-user", "user_id": young})).await);
    tx.rollback().await.unwrap();
    crate::support::eventually(
        "deleted once the lock is free",
        std::time::Duration::from_secs(20),
        async || {
            error_type(&server.call(json!({"operation": "get-user", "user_id": young})).await) == "not-found"
        },
    )
    .await;
}

/// An email token is iamd's own, for its one purpose, unexpired and living no longer than
/// `jwt.email_validity`; a login token is none, and an email token is no bearer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_token_must_be_ours_for_its_purpose_unexpired_and_short_lived() {
    use iamd::crypto::{Claims, TokenSigner};
    let db = TestDb::new().await;
    let server = TestServer::spawn(
        db.url(),
        &[("IAMD_BOOTSTRAP_ON_START", "false"), ("IAMD_JWT_EMAIL_VALIDITY", "1h")],
    );
    workspace(&server, "acme").await;
    let gil = ok(server
        .call(json!({"operation": "create-user", "workspace": "acme", "user": {"username": "gil",
            "password": PASSWORD, "email": "gil@example.org", "roles": ["reader"]}}))
        .await)["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let signer = TokenSigner::new(db.active_signing_key().await, None, vec![]);
    let now = Utc::now().timestamp();
    let token = |aud: Option<&str>, iat: i64, exp: i64| {
        let claims =
            Claims { aud: aud.map(str::to_owned), ..Claims::new("iamd", &gil, "acme", vec![], 1, iat, exp) };
        signer.sign(&claims).unwrap()
    };
    let login = server.jwt("gil", PASSWORD).await;
    for (what, bad) in [
        ("expired", token(Some("verification"), now - 7200, now - 3600)),
        ("longer than jwt.email_validity", token(Some("verification"), now, now + 7200)),
        ("another purpose", token(Some("password_reset"), now, now + 600)),
        ("no purpose", token(None, now, now + 600)),
        ("a login token", login.clone()),
        ("garbage", "a.b.c".to_owned()),
    ] {
        let reply = server.call(json!({"operation": "verify-email", "token": bad})).await;
        assert_eq!(error_type(&reply), "auth-failed", "{what}: {reply}");
    }
    let good = token(Some("verification"), now, now + 600);
    assert_eq!(
        rest(&server, Method::GET, "/api/v1/auth/whoami", Some(&good), Value::Null).await.0,
        401,
        "no bearer"
    );
    ok(server.call(json!({"operation": "verify-email", "token": good})).await);
    assert_eq!(rest(&server, Method::GET, "/api/v1/auth/whoami", Some(&login), Value::Null).await.0, 401);
    let pool = db.pool();
    crate::support::eventually("refusals audited", std::time::Duration::from_secs(10), async || {
        let client = pool.get().await.unwrap();
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE reason = 'invalid-token'), count(*) FILTER (WHERE reason = 'ok') \
                 FROM authentications WHERE operation = 'verify-email'",
                &[],
            )
            .await
            .unwrap();
        (row.get::<_, i64>(0), row.get::<_, i64>(1)) == (6, 1)
    })
    .await;
}
