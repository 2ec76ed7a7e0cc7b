//! Issue 15, item 3: private signing keys (and the digest key) sealed at rest under the KEK,
//! through the real binary: nothing of a private key in a dump of the database, one line when
//! the KEK is wrong or missing, `iamd signing-keys rewrap` sealing and rotating, a warning once
//! when no KEK is set, and retired keys kept with their public half only.

use crate::support::server::{ok, run_iamd_with, TestServer};
use crate::support::TestDb;
use iamd::crypto::Kek;
use serde_json::json;

const PASSWORD: &str = "a long enough passphrase";

fn env_with(kek: &Kek) -> [(&'static str, String); 2] {
    [("IAMD_SIGNING_KEK", kek.to_base64()), ("IAMD_BOOTSTRAP_ON_START", "true".into())]
}

fn pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Every spelling of `bytes` a dump could carry.
fn spellings(bytes: &[u8]) -> Vec<String> {
    use base64::Engine;
    vec![
        hex::encode(bytes),
        base64::engine::general_purpose::STANDARD.encode(bytes),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_kek_no_private_key_byte_is_in_a_dump_and_tokens_still_verify() {
    let db = TestDb::new().await;
    let kek = Kek::generate();
    let env = env_with(&kek);
    let server = TestServer::binary(db.url(), &pairs(&env));
    assert!(server.logged("no key-encryption key").is_empty(), "no warning with a KEK");
    server.create_user("default", "alice", PASSWORD, &["reader"]).await;
    let before = server.jwt("alice", PASSWORD).await;
    let retired = db.active_signing_key_opened_with(Some(&kek)).await;
    ok(server.call(json!({"operation": "rotate-signing-key"})).await);
    let active = db.active_signing_key_opened_with(Some(&kek)).await;
    assert_ne!(active.kid, retired.kid);
    let after = server.jwt("alice", PASSWORD).await;

    let dump = db.dump();
    assert!(
        dump.contains(&active.kid) && dump.contains(&hex::encode(&active.public)),
        "the dump has the keys' rows"
    );
    for key in [&active, &retired] {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let pkcs8 = key.private_pkcs8();
        let seed = ed25519_dalek::SigningKey::from_pkcs8_der(pkcs8).unwrap().to_bytes();
        for secret in [pkcs8, &seed[..]] {
            for spelling in spellings(secret) {
                assert!(!dump.contains(&spelling), "a private key of {} is in the dump", key.kid);
            }
        }
    }
    let client = db.pool().get().await.unwrap();
    let row = client
        .query_one("SELECT private_key, kek FROM signing_keys WHERE kid = $1", &[&retired.kid])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, Option<Vec<u8>>>(0), row.get::<_, Option<String>>(1)),
        (None, None),
        "retired: public half only"
    );
    let row = client.query_one("SELECT kek FROM signing_keys WHERE kid = $1", &[&active.kid]).await.unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), Some(kek.fingerprint()));

    // The sealed key signs: both tokens verify (the retired key's within its grace period).
    for jwt in [&before, &after] {
        let whoami = server.call_as(jwt, json!({"operation": "whoami"})).await;
        assert_eq!(ok(whoami)["user"]["username"], "alice");
    }
    // A restart opens the sealed key again.
    let server = server.restart();
    let whoami = server.call_as(&after, json!({"operation": "whoami"})).await;
    assert_eq!(ok(whoami)["user"]["username"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_kek_stops_the_start_with_one_line() {
    let db = TestDb::new().await;
    let kek = Kek::generate();
    let env = env_with(&kek);
    drop(TestServer::spawn(db.url(), &pairs(&env)));

    let wrong = Kek::generate();
    let (code, _, stderr) = run_iamd_with(db.url(), &pairs(&env_with(&wrong)), &["serve"]);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("iamd:")).collect();
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains(&kek.fingerprint()) && lines[0].contains(&wrong.fingerprint()), "{stderr}");
    assert!(
        !stderr.contains(&kek.to_base64()) && !stderr.contains(&wrong.to_base64()),
        "never the key itself"
    );

    let (code, _, stderr) = run_iamd_with(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "true")], &["serve"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("iamd:") && l.contains("no KEK is configured")), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrap_seals_unsealed_keys_and_moves_them_to_a_new_kek() {
    let db = TestDb::new().await;
    // Started without a KEK: warned once, stored unsealed.
    let server = TestServer::binary(db.url(), &[("IAMD_BOOTSTRAP_ON_START", "true")]);
    assert_eq!(server.logged("no key-encryption key is set").len(), 1, "{:?}", server.stderr());
    server.create_user("default", "bob", PASSWORD, &["reader"]).await;
    let jwt = server.jwt("bob", PASSWORD).await;
    drop(server);
    let plain = db.active_signing_key().await;
    // What a backup held before: the dump check sees an unsealed key.
    assert!(db.dump().contains(&hex::encode(plain.private_pkcs8())), "unsealed without a KEK");

    let first = Kek::generate();
    let env = env_with(&first);
    let (code, stdout, stderr) = run_iamd_with(db.url(), &pairs(&env), &["signing-keys", "rewrap"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("3 sealed, 0 moved"), "the two signing keys and the digest key: {stdout}");
    let dump = db.dump();
    assert!(!dump.contains(&hex::encode(plain.private_pkcs8())), "sealed now");
    assert_eq!(db.active_signing_key_opened_with(Some(&first)).await.kid, plain.kid);

    // Rotating the KEK: the old one from a file, the new one configured.
    let second = Kek::generate();
    let old_file = tempfile_with(&first.to_base64());
    let env2 = env_with(&second);
    let (code, stdout, stderr) =
        run_iamd_with(db.url(), &pairs(&env2), &["signing-keys", "rewrap", "--old-kek-file", &old_file]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("0 sealed, 3 moved"), "{stdout}");
    // Again: nothing left to move.
    let (_, stdout, _) =
        run_iamd_with(db.url(), &pairs(&env2), &["signing-keys", "rewrap", "--old-kek-file", &old_file]);
    assert!(stdout.contains("0 sealed, 0 moved from the old KEK, 3 already"), "{stdout}");
    std::fs::remove_file(&old_file).unwrap();
    // Without the old KEK, a key sealed under another one fails the whole rewrap.
    let third = Kek::generate();
    let (code, _, stderr) = run_iamd_with(db.url(), &pairs(&env_with(&third)), &["signing-keys", "rewrap"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("nothing was changed") && stderr.contains(&second.fingerprint()), "{stderr}");
    assert_eq!(db.active_signing_key_opened_with(Some(&second)).await.kid, plain.kid);

    // The old KEK no longer starts iamd; the new one does, and the token from before verifies.
    let (code, _, _) = run_iamd_with(db.url(), &pairs(&env), &["serve"]);
    assert_eq!(code, 1);
    let server = TestServer::binary(db.url(), &pairs(&env2));
    assert!(server.logged("key-encryption key").is_empty(), "{:?}", server.stderr());
    let whoami = server.call_as(&jwt, json!({"operation": "whoami"})).await;
    assert_eq!(ok(whoami)["user"]["username"], "bob");
}

/// A file holding `text`, removed with the test process's temporary directory.
fn tempfile_with(text: &str) -> String {
    let path = std::env::temp_dir().join(format!("iamd-kek-{:016x}", rand::random::<u64>()));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}
