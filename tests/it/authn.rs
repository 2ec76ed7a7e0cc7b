//! Who may call iamd over HTTP and what they may do, through the real binary: JWT bearers and
//! their edge cases (expired, wrong key, HS256 and `none`, no `sub`, a stale account version,
//! a disabled user, a rotated key in and out of its grace period), the JWKS document, token
//! validation for services (validate-token, `GET /api/v1/auth/validate`, RFC 7662
//! introspection), and the upstream extensions whoami, list-my-workspaces, bootstrap-status,
//! authorise and authorise-many. (What each role may do is `tests/it/matrix.rs`'s.)

use crate::support::server::{error_type, ok, TestServer};
use crate::support::TestDb;
use base64::Engine;
use chrono::{Duration, Utc};
use iamd::crypto::{Claims, SigningKey, TokenSigner};
use serde_json::{json, Value};

const PASSWORD: &str = "a long enough passphrase";

/// A server with workspaces `acme` and `globex`, a reader, a writer, an admin and a `target`
/// reader in `acme`, and a reader in `globex`. Returns the server and the user ids by name.
async fn world(db: &TestDb) -> (TestServer, std::collections::HashMap<&'static str, String>) {
    let server = TestServer::spawn(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "false")]);
    let mut ids = std::collections::HashMap::new();
    for ws in ["acme", "globex"] {
        ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": ws}})).await);
    }
    for (name, ws, role) in [
        ("reader", "acme", "reader"),
        ("writer", "acme", "writer"),
        ("admin", "acme", "admin"),
        ("target", "acme", "reader"),
        ("other", "globex", "reader"),
    ] {
        ids.insert(name, server.create_user(ws, name, PASSWORD, &[role]).await);
    }
    (server, ids)
}

async fn jwt_of(server: &TestServer, username: &str) -> String {
    server.jwt(username, PASSWORD).await
}

fn claims(sub: &str, version: i64) -> Claims {
    let now = Utc::now();
    Claims::new(
        "iamd",
        sub,
        "acme",
        vec!["admin".into()],
        version,
        now.timestamp(),
        (now + Duration::minutes(10)).timestamp(),
    )
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

async fn status_as(server: &TestServer, bearer: &str, request: Value) -> (u16, Value) {
    server.post(Some(bearer), &request.to_string()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_is_a_bearer_only_while_signature_expiry_version_and_state_all_hold() {
    let db = TestDb::new().await;
    let (server, ids) = world(&db).await;
    let whoami = json!({"operation": "whoami"});
    let denied = (401, json!({"error": "auth failure"}));

    let token = jwt_of(&server, "writer").await;
    let (status, me) = status_as(&server, &token, whoami.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(me["user"]["id"], ids["writer"].as_str(), "the actor is the token's subject");
    // The actor cannot be spoofed by the caller.
    let (_, me) = status_as(&server, &token, json!({"operation": "whoami", "actor": ids["admin"]})).await;
    assert_eq!(me["user"]["id"], ids["writer"].as_str());

    let key = db.active_signing_key().await;
    let signer = TokenSigner::new(key.clone(), None, vec![]);
    // Roles come from the database, not the token: claims saying admin change nothing.
    let forged_roles = signer.sign(&claims(&ids["writer"], 1)).unwrap();
    assert_eq!(status_as(&server, &forged_roles, json!({"operation": "list-workspaces"})).await.0, 403);

    let mut expired = claims(&ids["writer"], 1);
    expired.exp = Utc::now().timestamp() - 5;
    assert_eq!(status_as(&server, &signer.sign(&expired).unwrap(), whoami.clone()).await, denied);

    let mut foreign = claims(&ids["writer"], 1);
    foreign.iss = "someone-else".into();
    assert_eq!(status_as(&server, &signer.sign(&foreign).unwrap(), whoami.clone()).await, denied);

    // Times iamd never issues: issued, or valid only, in the future; a life past `jwt.ttl`.
    let now = Utc::now().timestamp();
    let mut future = claims(&ids["writer"], 1);
    (future.iat, future.exp) = (now + 600, now + 1200);
    let mut not_yet = claims(&ids["writer"], 1);
    not_yet.nbf = Some(now + 600);
    let mut long_lived = claims(&ids["writer"], 1);
    long_lived.exp = now + 2 * 3600;
    for (what, c) in [("future iat", future), ("future nbf", not_yet), ("2 h lifetime", long_lived)] {
        assert_eq!(status_as(&server, &signer.sign(&c).unwrap(), whoami.clone()).await, denied, "{what}");
    }

    // Another key under the active key's kid.
    let mut impostor = SigningKey::generate(Utc::now()).unwrap();
    impostor.kid = key.kid.clone();
    let wrong_key = TokenSigner::new(impostor, None, vec![]).sign(&claims(&ids["writer"], 1)).unwrap();
    assert_eq!(status_as(&server, &wrong_key, whoami.clone()).await, denied);

    // HS256 with the public key as the secret (the classic confusion), and `none`.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(key.kid.clone());
    let hs256 = jsonwebtoken::encode(
        &header,
        &claims(&ids["writer"], 1),
        &jsonwebtoken::EncodingKey::from_secret(&key.public),
    )
    .unwrap();
    assert_eq!(status_as(&server, &hs256, whoami.clone()).await, denied);
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": key.kid})),
        b64(&serde_json::to_value(claims(&ids["writer"], 1)).unwrap())
    );
    assert_eq!(status_as(&server, &none, whoami.clone()).await, denied);

    // No `sub`: signed correctly, still nobody.
    let mut no_sub = serde_json::to_value(claims(&ids["writer"], 1)).unwrap();
    no_sub.as_object_mut().unwrap().remove("sub");
    let mut eddsa = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    eddsa.kid = Some(key.kid.clone());
    let no_sub =
        jsonwebtoken::encode(&eddsa, &no_sub, &jsonwebtoken::EncodingKey::from_ed_der(key.private_pkcs8()))
            .unwrap();
    assert_eq!(status_as(&server, &no_sub, whoami.clone()).await, denied);
    assert_eq!(status_as(&server, "not.a.jwt", whoami.clone()).await, denied);

    // A password change bumps the account version: the old token dies, a new one works.
    ok(server
        .call(json!({"operation": "change-password", "user_id": ids["writer"],
            "password": PASSWORD, "new_password": "another long passphrase"}))
        .await);
    assert_eq!(status_as(&server, &token, whoami.clone()).await, denied, "stale version");
    let fresh = ok(server
        .call(json!({"operation": "login", "username": "writer", "password": "another long passphrase"}))
        .await)["jwt"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(status_as(&server, &fresh, whoami.clone()).await.0, 200);

    // Disabled: the reader's token dies with the account; enabling does not revive it
    // (disabling bumped the version).
    let reader = jwt_of(&server, "reader").await;
    assert_eq!(status_as(&server, &reader, whoami.clone()).await.0, 200);
    ok(server
        .call(json!({"operation": "disable-user", "workspace": "acme", "user_id": ids["reader"]}))
        .await);
    assert_eq!(status_as(&server, &reader, whoami.clone()).await, denied);
    ok(server
        .call(json!({"operation": "update-user", "workspace": "acme", "user_id": ids["reader"],
            "user": {"enabled": true}}))
        .await);
    assert_eq!(status_as(&server, &reader, whoami.clone()).await, denied);
    // A disabled workspace stops its users' tokens too.
    let other = jwt_of(&server, "other").await;
    ok(server.call(json!({"operation": "disable-workspace", "workspace_record": {"id": "globex"}})).await);
    assert_eq!(status_as(&server, &other, whoami).await, denied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_rotation_old_tokens_verify_during_the_grace_period_and_not_after() {
    let db = TestDb::new().await;
    let (server, _) = world(&db).await;
    // The Ed25519 keys (the P-256 ones of the /v1 tokens rotate beside them: tests/it/v1.rs).
    let jwks = |server: &TestServer| {
        let url = format!("{}/.well-known/jwks.json", server.base);
        async move {
            let all = reqwest::get(url).await.unwrap().json::<Value>().await.unwrap();
            let okp: Vec<Value> =
                all["keys"].as_array().unwrap().iter().filter(|k| k["kty"] == "OKP").cloned().collect();
            json!({ "keys": okp })
        }
    };
    let before = jwks(&server).await;
    let keys = before["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = db.active_signing_key().await;
    assert_eq!(keys[0]["kid"], key.kid.as_str());
    assert_eq!((keys[0]["kty"].as_str(), keys[0]["crv"].as_str()), (Some("OKP"), Some("Ed25519")));
    assert_eq!((keys[0]["alg"].as_str(), keys[0]["use"].as_str()), (Some("EdDSA"), Some("sig")));
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(keys[0]["x"].as_str().unwrap()).unwrap();
    assert_eq!(x, key.public, "x is the raw Ed25519 public key");
    assert!(keys[0].get("d").is_none(), "never the private half");

    let old = jwt_of(&server, "writer").await;
    let rotated = ok(server.call(json!({"operation": "rotate-signing-key"})).await);
    assert!(rotated["signing_key_public"].as_str().unwrap().contains("PUBLIC KEY"));
    let whoami = json!({"operation": "whoami"});
    assert_eq!(status_as(&server, &old, whoami.clone()).await.0, 200, "in grace");
    let new = jwt_of(&server, "writer").await;
    assert_ne!(
        jsonwebtoken::decode_header(&new).unwrap().kid,
        jsonwebtoken::decode_header(&old).unwrap().kid
    );
    assert_eq!(status_as(&server, &new, whoami.clone()).await.0, 200);
    let after = jwks(&server).await;
    assert_eq!(after["keys"].as_array().unwrap().len(), 2, "the new key and the one in grace");

    // The grace period ends (moved into the past in the table; a restart reloads the keys).
    let client = db.pool().get().await.unwrap();
    let ended = client
        .execute(
            "UPDATE signing_keys SET valid_until = now() - interval '1 second' WHERE kid = $1",
            &[&key.kid],
        )
        .await
        .unwrap();
    assert_eq!(ended, 1);
    let server = server.restart();
    assert_eq!(status_as(&server, &old, whoami.clone()).await.0, 401, "out of grace");
    assert_eq!(status_as(&server, &new, whoami).await.0, 200);
    assert_eq!(jwks(&server).await["keys"].as_array().unwrap().len(), 1);
}

/// The self-service read of one's workspaces: a member's own, an admin's every one. (What
/// each role may do is the matrix's: `tests/it/matrix.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_my_workspaces_is_a_members_own_and_an_admins_every_one() {
    let db = TestDb::new().await;
    let (server, _) = world(&db).await;
    let writer = jwt_of(&server, "writer").await;
    let (_, mine) = status_as(&server, &writer, json!({"operation": "list-my-workspaces"})).await;
    assert_eq!(mine["workspaces"].as_array().unwrap().len(), 1);
    assert_eq!(mine["workspaces"][0]["id"], "acme");
    let admin = jwt_of(&server, "admin").await;
    let (_, all) = status_as(&server, &admin, json!({"operation": "list-my-workspaces"})).await;
    assert_eq!(all["workspaces"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorise_answers_for_a_user_and_bootstrap_status_for_the_system() {
    let db = TestDb::new().await;
    let (server, ids) = world(&db).await;
    // Bootstrapped means an admin exists (this world has one, in acme).
    let status = ok(server.call(json!({"operation": "bootstrap-status"})).await);
    assert!(status.get("bootstrap_available").is_none(), "{status}");

    let ask = |user: &str, capability: &str, resource: Value| {
        json!({"operation": "authorise", "user_id": user, "capability": capability,
            "resource_json": resource.to_string()})
    };
    let decision =
        |r: &Value| (r["decision_allow"].as_bool().unwrap_or(false), r["decision_ttl_seconds"].clone());
    let acme = json!({"workspace": "acme"});
    let globex = json!({"workspace": "globex"});
    for (user, capability, resource, allow) in [
        ("reader", "graph:read", &acme, true),
        ("reader", "graph:write", &acme, false),
        ("writer", "graph:write", &acme, true),
        ("writer", "graph:write", &globex, false),
        ("admin", "graph:write", &globex, true),
        ("admin", "no-such:capability", &acme, false),
        ("reader", "iam:admin", &acme, false),
        ("admin", "iam:admin", &json!({}), true),
    ] {
        let r = ok(server.call(ask(&ids[user], capability, resource.clone())).await);
        assert_eq!(decision(&r), (allow, json!(60)), "{user} {capability} {resource}");
    }
    // The workspace may come from the parameters instead.
    let r = ok(server
        .call(json!({"operation": "authorise", "user_id": ids["reader"], "capability": "graph:read",
            "parameters_json": globex.to_string()}))
        .await);
    assert!(!decision(&r).0);
    // Unknown users are denied, not an error; malformed input is invalid-argument.
    let r = ok(server.call(ask("no-such-user", "graph:read", acme.clone())).await);
    assert!(!decision(&r).0);
    let bad = server
        .call(json!({"operation": "authorise", "user_id": ids["reader"], "capability": "graph:read",
        "resource_json": "[1,2]"}))
        .await;
    assert_eq!(error_type(&bad), "invalid-argument");
    assert_eq!(
        error_type(&server.call(json!({"operation": "authorise", "user_id": ids["reader"]})).await),
        "invalid-argument"
    );

    let checks = json!([
        {"capability": "graph:read", "resource": {"workspace": "acme"}},
        {"capability": "graph:read", "resource": {"workspace": "globex"}},
        {"capability": "graph:read", "parameters": {"workspace": "acme"}},
        "not an object",
        {"resource": {"workspace": "acme"}},
    ]);
    let many = ok(server
        .call(json!({"operation": "authorise-many", "user_id": ids["reader"], "authorise_checks": checks.to_string()}))
        .await);
    let decisions: Value = serde_json::from_str(many["decisions_json"].as_str().unwrap()).unwrap();
    let allows: Vec<bool> =
        decisions.as_array().unwrap().iter().map(|d| d["allow"].as_bool().unwrap()).collect();
    assert_eq!(allows, [true, false, true, false, false]);
    assert!(decisions.as_array().unwrap().iter().all(|d| d["ttl"] == 60));
    let bad = server
        .call(json!({"operation": "authorise-many", "user_id": ids["reader"], "authorise_checks": "{}"}))
        .await;
    assert_eq!(error_type(&bad), "invalid-argument");

    // A disabled user is denied everything.
    ok(server
        .call(json!({"operation": "disable-user", "workspace": "acme", "user_id": ids["writer"]}))
        .await);
    let r = ok(server.call(ask(&ids["writer"], "graph:read", acme)).await);
    assert!(!decision(&r).0);

    // Workspace `default` changes nothing either way.
    ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": "default"}})).await);
    let status = ok(server.call(json!({"operation": "bootstrap-status"})).await);
    assert!(status.get("bootstrap_available").is_none(), "{status}");
}

/// The claims of a token, unverified (the test checks the signature separately).
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mint_token_issues_an_audited_token_that_jwks_and_iamd_verify_and_a_password_reset_kills() {
    let db = TestDb::new().await;
    let (server, ids) = world(&db).await;
    let mint = |extra: Value| {
        let mut request = json!({"operation": "mint-token", "workspace": "globex",
            "user_context_json": json!({"tenant": "t-1"}).to_string()});
        request.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        request
    };
    let reply = ok(server.call(mint(json!({"user_id": ids["reader"]}))).await);
    let token = reply["jwt"].as_str().unwrap().to_owned();
    assert!(reply["jwt_expires"].as_str().is_some_and(|e| e.ends_with('Z')), "{reply}");
    let claims = claims_of(&token);
    assert_eq!(
        (&claims["sub"], &claims["workspace"], &claims["default_workspace"], &claims["user_context"]),
        (&json!(ids["reader"]), &json!("globex"), &json!("globex"), &json!({"tenant": "t-1"})),
        "{claims}"
    );

    // Verifiable with the JWKS alone, as a service would.
    let (status, jwks) = server.get("/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the kid is in the JWKS");
    let key = jsonwebtoken::DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_issuer(&["iamd"]);
    jsonwebtoken::decode::<Value>(&token, &key, &validation)
        .expect("the minted token verifies against the JWKS");

    // iamd takes it as the user's bearer, until the user's account version moves on.
    let whoami = json!({"operation": "whoami"});
    let (status, me) = status_as(&server, &token, whoami.clone()).await;
    assert_eq!((status, &me["user"]["id"]), (200, &json!(ids["reader"])), "{me}");
    ok(server
        .call(json!({"operation": "reset-password", "workspace": "acme", "user_id": ids["reader"]}))
        .await);
    assert_eq!(status_as(&server, &token, whoami).await.0, 401, "a reset kills minted tokens too");

    // Audited: one token.minted event naming the token's id, never the token.
    let client = db.pool().get().await.unwrap();
    let rows = client
        .query("SELECT payload, metadata FROM events WHERE event_type = 'token.minted'", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let payload: Value = rows[0].get(0);
    assert_eq!(
        (&payload["token_id"], &payload["workspace"]),
        (&claims["jti"], &json!("globex")),
        "{payload}"
    );
    assert!(!payload.to_string().contains(&token) && !payload.to_string().contains("eyJ"), "{payload}");

    // By username; and the caller itself when neither is given (an admin minting for itself).
    let by_name = ok(server.call(mint(json!({"username": "WRITER"}))).await);
    assert_eq!(claims_of(by_name["jwt"].as_str().unwrap())["sub"], json!(ids["writer"]));
    let admin = jwt_of(&server, "admin").await;
    let (status, own) = status_as(&server, &admin, mint(json!({}))).await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(claims_of(own["jwt"].as_str().unwrap())["sub"], json!(ids["admin"]));
    // A writer may not mint.
    let writer = jwt_of(&server, "writer").await;
    assert_eq!(status_as(&server, &writer, mint(json!({}))).await.0, 403);

    // Upstream's argument rules.
    ok(server
        .call(json!({"operation": "disable-user", "workspace": "acme", "user_id": ids["target"]}))
        .await);
    ok(server.call(json!({"operation": "create-workspace", "workspace_record": {"id": "initech"}})).await);
    ok(server.call(json!({"operation": "disable-workspace", "workspace_record": {"id": "initech"}})).await);
    for (request, expected) in [
        (
            json!({"operation": "mint-token", "user_id": ids["reader"], "user_context_json": "{}"}),
            "invalid-argument",
        ),
        (
            json!({"operation": "mint-token", "workspace": "globex", "user_id": ids["reader"]}),
            "invalid-argument",
        ),
        (mint(json!({"user_id": ids["reader"], "username": "reader"})), "invalid-argument"),
        (mint(json!({})), "invalid-argument"),
        (mint(json!({"user_id": ids["reader"], "user_context_json": "{not json"})), "invalid-argument"),
        (
            mint(json!({"user_id": ids["reader"], "user_context_json": "{\"a\":\"\\u0000\"}"})),
            "invalid-argument",
        ),
        (mint(json!({"user_id": "no-such-user"})), "not-found"),
        (mint(json!({"username": "nobody"})), "not-found"),
        (mint(json!({"user_id": ids["target"]})), "operation-not-permitted"),
        (mint(json!({"user_id": ids["reader"], "workspace": "nowhere"})), "not-found"),
        (mint(json!({"user_id": ids["reader"], "workspace": "initech"})), "not-found"),
    ] {
        assert_eq!(error_type(&server.call(request.clone()).await), expected, "{request}");
    }
    let minted: i64 = client
        .query_one("SELECT count(*) FROM events WHERE event_type = 'token.minted'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(minted, 3, "refusals record nothing");
}

/// Services validate tokens three ways — validate-token over the protocol, `GET
/// /api/v1/auth/validate` with the token as the bearer, RFC 7662 introspection — and all three
/// say the same: good while its signature, expiry, the account's version and state hold; the
/// roles and `is_admin` read from the account. Refusals land in the authentication audit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_validate_tokens_through_the_protocol_rest_and_introspection() {
    let db = TestDb::new().await;
    let (server, ids) = world(&db).await;
    let (reader, admin) = (jwt_of(&server, "reader").await, jwt_of(&server, "admin").await);
    let validate = |token: &str| json!({"operation": "validate-token", "token": token});
    // validate-token (here through the gateway; a user needs iam:admin).
    let r = ok(server.call(validate(&reader)).await);
    assert_eq!(r["resolved_user_id"], ids["reader"].as_str());
    assert_eq!(
        (r["resolved_workspace"].as_str(), r["resolved_roles"].clone()),
        (Some("acme"), json!(["reader"]))
    );
    assert!(r.get("resolved_is_admin").is_none(), "{r}");
    let expires = chrono::DateTime::parse_from_rfc3339(r["jwt_expires"].as_str().unwrap()).unwrap();
    assert!(expires > Utc::now(), "{r}");
    assert_eq!(ok(server.call(validate(&admin)).await)["resolved_is_admin"], true);
    let api_key = ok(server
        .call(json!({"operation": "create-api-key", "workspace": "acme", "key": {"user_id": ids["reader"], "name": "k"}}))
        .await)["api_key_plaintext"]
        .as_str()
        .unwrap()
        .to_owned();
    for bad in ["garbage", "a.b.c", api_key.as_str()] {
        assert_eq!(error_type(&server.call(validate(bad)).await), "auth-failed", "{bad}");
    }
    assert_eq!(error_type(&server.call(json!({"operation": "validate-token"})).await), "invalid-argument");
    assert_eq!(status_as(&server, &reader, validate(&admin)).await.0, 403, "a reader may not ask");

    // GET /api/v1/auth/validate: the bearer itself.
    assert_eq!(
        (
            validated(&server, Some(&reader)).await,
            validated(&server, Some("garbage")).await,
            validated(&server, None).await
        ),
        (204, 401, 401)
    );

    // Introspection: form-encoded (or JSON), by any authenticated caller.
    let (status, body) =
        introspect(&server, Some(&admin), format!("token={reader}&token_type_hint=access_token")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["active"].clone(), body["sub"].clone(), body["scope"].clone(), body["is_admin"].clone()),
        (json!(true), json!(ids["reader"]), json!("reader"), json!(false))
    );
    assert_eq!(body["iss"], "iamd");
    assert!(body["exp"].as_i64().unwrap() > body["iat"].as_i64().unwrap());
    let (_, by_json) = server
        .request(
            reqwest::Method::POST,
            "/api/v1/auth/introspect",
            Some(&reader),
            Some(json!({"token": admin}).to_string()),
            &[],
        )
        .await;
    assert_eq!((by_json["active"].clone(), by_json["is_admin"].clone()), (json!(true), json!(true)));
    assert_eq!(introspect(&server, Some(&admin), "token=garbage".into()).await.1, json!({"active": false}));
    assert_eq!(
        introspect(&server, None, format!("token={reader}")).await.0,
        401,
        "the caller must authenticate"
    );

    // After a logout everywhere the reader's token is good nowhere.
    ok(server.call(json!({"operation": "logout-all", "workspace": "acme", "user_id": ids["reader"]})).await);
    assert_eq!(error_type(&server.call(validate(&reader)).await), "auth-failed");
    assert_eq!(validated(&server, Some(&reader)).await, 401);
    assert_eq!(
        introspect(&server, Some(&admin), format!("token={reader}")).await.1,
        json!({"active": false})
    );

    // The refusals are audited under their own operations, with the reason bucket.
    let pool = db.pool();
    crate::support::eventually("audited refusals", std::time::Duration::from_secs(10), async || {
        let client = pool.get().await.unwrap();
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE operation = 'validate-token' AND reason = 'stale-token'), \
                        count(*) FILTER (WHERE operation = 'introspect' AND reason = 'stale-token') \
                 FROM authentications",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0) == 1 && row.get::<_, i64>(1) == 1
    })
    .await;
}

/// `POST /api/v1/auth/introspect` with a form body: (status, JSON body).
async fn introspect(server: &TestServer, bearer: Option<&str>, form: String) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/introspect", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json::<Value>().await.unwrap_or(Value::Null))
}

/// The status of `GET /api/v1/auth/validate` with `bearer`.
async fn validated(server: &TestServer, bearer: Option<&str>) -> u16 {
    server.request(reqwest::Method::GET, "/api/v1/auth/validate", bearer, None, &[]).await.0
}

/// An admin issues a long-lived token for a service account (Netsoc's `POST
/// /v1/users/{u}/token`, Go durations): it works as a bearer for as long as asked — past
/// `jwt.ttl` — until the account's version moves on; it is recorded, never stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issued_token_lives_its_duration_and_dies_with_the_account_version() {
    let db = TestDb::new().await;
    let (server, ids) = world(&db).await;
    let admin = jwt_of(&server, "admin").await;
    let path = format!("/api/v1/users/{}/token", ids["target"]);
    let issue = |bearer: &str, duration: &str| {
        let (server, path, body) = (&server, path.clone(), json!({"duration": duration}).to_string());
        let bearer = bearer.to_owned();
        async move { server.request(reqwest::Method::POST, &path, Some(&bearer), Some(body), &[]).await }
    };
    let (status, issued) = issue(&admin, "876000h").await;
    assert_eq!(status, 200, "{issued}");
    let token = issued["token"].as_str().unwrap().to_owned();
    let expires = chrono::DateTime::parse_from_rfc3339(issued["expires"].as_str().unwrap()).unwrap();
    assert!(expires > Utc::now() + Duration::days(365 * 99), "{issued}");
    let whoami = json!({"operation": "whoami"});
    assert_eq!(status_as(&server, &token, whoami.clone()).await.1["user"]["id"], ids["target"].as_str());
    let checked = ok(server.call(json!({"operation": "validate-token", "token": token})).await);
    assert_eq!(checked["resolved_user_id"], ids["target"].as_str());
    let (status, short) = issue(&admin, "1h30m").await;
    assert_eq!(status, 200);
    let lives =
        chrono::DateTime::parse_from_rfc3339(short["expires"].as_str().unwrap()).unwrap().with_timezone(&Utc)
            - Utc::now();
    assert!(lives > Duration::minutes(89) && lives <= Duration::minutes(90), "{short}");

    // Refusals: the syntax, the bounds, the caller, the user.
    for bad in ["24", "1d", "0", "-1h", "876001h", ""] {
        let (status, body) = issue(&admin, bad).await;
        assert_eq!((status, error_type(&body)), (400, "invalid-argument"), "{bad}: {body}");
    }
    let writer = jwt_of(&server, "writer").await;
    assert_eq!(issue(&writer, "24h").await, (403, json!({"error": "access denied"})));
    let nobody =
        server.call(json!({"operation": "issue-token", "user_id": "nobody", "duration": "1h"})).await;
    assert_eq!(error_type(&nobody), "not-found");

    // A logout everywhere kills it; the log has the issues, never the token.
    ok(server.call(json!({"operation": "logout-all", "workspace": "acme", "user_id": ids["target"]})).await);
    assert_eq!(status_as(&server, &token, whoami).await.0, 401);
    let (code, stdout, stderr) = crate::support::server::run_iamd(db.url(), &["audit", "log"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().filter(|l| l.contains("issued, expires")).count(), 2, "{stdout}");
    assert!(!db.dump().contains(&token), "the token is never stored");
}
