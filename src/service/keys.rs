//! The secrets iamd keeps at rest and the key-encryption key (KEK) that seals them: the
//! private halves of the signing keys (`signing_keys`) and the digest key of the keyed
//! digests (`server_keys`). [`start`] reads what it needs and stops with one line when the
//! KEK does not fit; [`rewrap`] seals everything under a new KEK in one transaction.

use crate::crypto::{seal, DigestKey, Kek};
use anyhow::Context;
use deadpool_postgres::Pool;

/// The name of the digest key in `server_keys` and what it is sealed under.
const DIGEST: &str = "digest";
const DIGEST_SEAL_NAME: &str = "server key digest";

/// At start: the digest key (created on the first start, sealed under `kek` when given), and
/// a check that every stored private signing key opens with `kek` — a wrong or missing KEK
/// ends the start with one line naming both fingerprints. Warns once when no KEK is set, or
/// when secrets stored before it was set are still unsealed.
pub async fn start(pool: &Pool, kek: Option<&Kek>) -> anyhow::Result<DigestKey> {
    let client = pool.get().await.context("connecting to the database")?;
    let (stored, sealed_by) = seal::store(kek, DIGEST_SEAL_NAME, DigestKey::generate().as_bytes());
    client
        .execute(
            "INSERT INTO server_keys (name, key, kek) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
            &[&DIGEST, &stored, &sealed_by],
        )
        .await
        .context("storing the digest key")?;
    let row = client
        .query_one("SELECT key, kek FROM server_keys WHERE name = $1", &[&DIGEST])
        .await
        .context("reading the digest key")?;
    let (stored, sealed_by): (Vec<u8>, Option<String>) = (row.get(0), row.get(1));
    let mut unsealed = usize::from(sealed_by.is_none());
    let plain = seal::load(kek, DIGEST_SEAL_NAME, &stored, sealed_by.as_deref())?;
    let digest_key = DigestKey::from_bytes(&plain).context("the stored digest key is not 32 bytes")?;

    let rows = client
        .query("SELECT kid, private_key, kek FROM signing_keys WHERE private_key IS NOT NULL", &[])
        .await
        .context("reading the signing keys")?;
    for row in &rows {
        let (kid, stored, sealed_by): (String, Vec<u8>, Option<String>) =
            (row.get(0), row.get(1), row.get(2));
        seal::load(kek, &seal::signing_key_name(&kid), &stored, sealed_by.as_deref())?;
        unsealed += usize::from(sealed_by.is_none());
    }
    match kek {
        None => tracing::warn!(
            "no key-encryption key is set (signing.kek_file / IAMD_SIGNING_KEK_FILE): private signing \
             keys and the digest key are stored unsealed, readable by anyone with a database backup"
        ),
        Some(kek) if unsealed > 0 => tracing::warn!(
            unsealed,
            kek = %kek.fingerprint(),
            "secrets stored before the key-encryption key was set are still unsealed: run `iamd signing-keys rewrap`"
        ),
        Some(_) => {}
    }
    Ok(digest_key)
}

/// What [`rewrap`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rewrapped {
    /// Secrets that were stored unsealed and are sealed now.
    pub sealed: usize,
    /// Secrets moved from the old KEK to the new one.
    pub rewrapped: usize,
    /// Secrets already sealed under the new KEK.
    pub unchanged: usize,
}

/// Seals every stored secret under `new`, in one transaction: unsealed ones, and those sealed
/// under `old`. A secret sealed under a KEK that is neither fails it all, naming that KEK.
pub async fn rewrap(pool: &Pool, new: &Kek, old: Option<&Kek>) -> anyhow::Result<Rewrapped> {
    let mut client = pool.get().await.context("connecting to the database")?;
    let tx = client.transaction().await?;
    let mut done = Rewrapped::default();
    let mut secrets = Vec::new();
    for row in tx
        .query("SELECT name, key, kek FROM server_keys ORDER BY name FOR UPDATE", &[])
        .await
        .context("reading the server keys")?
    {
        let name: String = row.get(0);
        let seal_name = format!("server key {name}");
        secrets.push(("server_keys", "name", name, seal_name, row.get::<_, Vec<u8>>(1), row.get(2)));
    }
    for row in tx
        .query("SELECT kid, private_key, kek FROM signing_keys WHERE private_key IS NOT NULL ORDER BY kid FOR UPDATE", &[])
        .await
        .context("reading the signing keys")?
    {
        let kid: String = row.get(0);
        let seal_name = seal::signing_key_name(&kid);
        secrets.push(("signing_keys", "kid", kid, seal_name, row.get(1), row.get(2)));
    }
    for (table, id_column, id, seal_name, stored, sealed_by) in secrets {
        let sealed_by: Option<String> = sealed_by;
        if sealed_by.as_deref() == Some(new.fingerprint().as_str()) {
            seal::load(Some(new), &seal_name, &stored, sealed_by.as_deref())?;
            done.unchanged += 1;
            continue;
        }
        if let Some(fp) = sealed_by.as_deref().filter(|fp| old.is_none_or(|old| old.fingerprint() != *fp)) {
            anyhow::bail!(
                "{seal_name} is sealed with key-encryption key {fp}, which is neither the configured KEK \
                 ({}) nor the one --old-kek-file gave: pass that KEK with --old-kek-file",
                new.fingerprint()
            );
        }
        let plain = seal::load(old, &seal_name, &stored, sealed_by.as_deref())?;
        let (resealed, fingerprint) = seal::store(Some(new), &seal_name, &plain);
        let column = if table == "server_keys" { "key" } else { "private_key" };
        tx.execute(
            &format!("UPDATE {table} SET {column} = $2, kek = $3 WHERE {id_column} = $1"),
            &[&id, &resealed, &fingerprint],
        )
        .await
        .with_context(|| format!("resealing {seal_name}"))?;
        if sealed_by.is_some() {
            done.rewrapped += 1;
        } else {
            done.sealed += 1;
        }
    }
    tx.commit().await.context("committing the rewrap")?;
    Ok(done)
}
