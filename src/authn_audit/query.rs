//! Reading the authentication audit back (the HTTP endpoint, `iamd audit authentications`),
//! and the keyed digest that stands for a name which found no user.

use super::recorder::describe;
use super::Outcome;
use crate::crypto::DigestKey;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;

/// What the audit keeps of a name that found no user: the keyed digest of its comparison key
/// (equal for names that compare equal), never the name.
pub fn username_digest(key: &DigestKey, name: &str) -> String {
    key.digest("username", crate::domain::username::lookup_key(name).as_bytes())
}

/// Replaces the names that logins which found no user left in the table before digests (up to
/// migration 0011) by their keyed digest; returns how many. Idempotent: run at every start.
pub async fn digest_unknown_usernames(pool: &Pool, key: &DigestKey) -> anyhow::Result<u64> {
    let client = pool.get().await.context("no database connection")?;
    let rows = client
        .query(
            "SELECT id, username FROM authentications \
             WHERE operation = 'login' AND user_id IS NULL AND username IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| anyhow::anyhow!("reading authentications: {}", describe(e)))?;
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let digests: Vec<String> = rows.iter().map(|r| username_digest(key, r.get::<_, &str>(1))).collect();
    client
        .execute(
            "UPDATE authentications a SET username = NULL, username_digest = d.digest \
             FROM UNNEST($1::bigint[], $2::text[]) AS d(id, digest) WHERE a.id = d.id",
            &[&ids, &digests],
        )
        .await
        .map_err(|e| anyhow::anyhow!("digesting unknown usernames: {}", describe(e)))
}

/// What auditors may filter on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub user_id: Option<String>,
    pub outcome: Option<Outcome>,
    /// At or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// At or before this instant.
    pub until: Option<DateTime<Utc>>,
}

/// A recorded outcome as auditors see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Entry {
    /// Increasing in commit order: pass the last one as `after` to resume.
    pub id: i64,
    /// When iamd began deciding.
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    /// `success` or `failure`.
    pub outcome: String,
    /// The bucket: `ok`, `malformed`, `unknown-user`, `bad-password`, `no-password`,
    /// `disabled`, `wrong-workspace`, `revoked-or-unknown`, `expired`, `invalid-token`,
    /// `unknown-signing-key`, `stale-token`, `error`.
    pub reason: String,
    /// `password`, `api-key` or `jwt`.
    pub credential: String,
    /// `login`, `resolve-api-key` or `http-bearer`.
    pub operation: String,
    pub workspace: Option<String>,
    pub user_id: Option<String>,
    /// The API key's id, when the key was found.
    pub key_id: Option<String>,
    /// The username of the user a login found.
    pub username: Option<String>,
    /// A login that found no user: the keyed digest (HMAC-SHA256, hex) of the name it gave,
    /// equal for equal names, never the name — it may be a password typed into the wrong field.
    pub username_digest: Option<String>,
    /// The client's address (HTTP peer), when known.
    pub client: Option<String>,
    /// `http` or `kafka`.
    pub source: String,
    pub request_id: Option<String>,
    /// How many attempts the record stands for: more than 1 for successful resolves of one
    /// key from one client and source coalesced by the writer (`request_id` is the first's).
    pub count: i32,
    /// When the last of coalesced attempts began (absent when `count` is 1).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_at: Option<DateTime<Utc>>,
}

const LIST: &str = "SELECT id, at, outcome, reason, credential, operation, workspace, user_id, key_id, \
    username, username_digest, client, source, request_id, count, last_at FROM authentications \
    WHERE id > $1 AND ($2::text IS NULL OR user_id = $2) AND ($3::text IS NULL OR outcome = $3) \
      AND ($4::timestamptz IS NULL OR at >= $4) AND ($5::timestamptz IS NULL OR at <= $5) \
    ORDER BY id LIMIT $6";

/// At most `limit` records after the id `after_id` (0: from the start) that match, oldest
/// id first.
pub async fn list(pool: &Pool, filter: &Filter, after_id: i64, limit: i64) -> anyhow::Result<Vec<Entry>> {
    let client = pool.get().await.context("no database connection")?;
    let outcome = filter.outcome.map(Outcome::as_str);
    let rows = client
        .query(LIST, &[&after_id, &filter.user_id, &outcome, &filter.since, &filter.until, &limit.max(0)])
        .await
        .map_err(|e| anyhow::anyhow!("reading authentications: {}", describe(e)))?;
    Ok(rows
        .iter()
        .map(|r| Entry {
            id: r.get("id"),
            at: r.get("at"),
            outcome: r.get("outcome"),
            reason: r.get("reason"),
            credential: r.get("credential"),
            operation: r.get("operation"),
            workspace: r.get("workspace"),
            user_id: r.get("user_id"),
            key_id: r.get("key_id"),
            username: r.get("username"),
            username_digest: r.get("username_digest"),
            client: r.get("client"),
            source: r.get("source"),
            request_id: r.get("request_id"),
            count: r.get("count"),
            last_at: r.get("last_at"),
        })
        .collect())
}

/// One line for people: time, outcome, reason, operation, credential, then the known
/// fields as `name=value` (values quoted when they hold a space or a quote).
pub fn render_text(e: &Entry) -> String {
    let mut line = format!(
        "{} #{} {} {} {} {}",
        e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        e.id,
        e.outcome,
        e.reason,
        e.operation,
        e.credential
    );
    for (name, value) in [
        ("workspace", &e.workspace),
        ("user", &e.user_id),
        ("key", &e.key_id),
        ("username", &e.username),
        ("username_digest", &e.username_digest),
        ("client", &e.client),
    ] {
        if let Some(v) = value {
            line.push_str(&format!(" {name}={}", quoted(v)));
        }
    }
    line.push_str(&format!(" source={}", quoted(&e.source)));
    if let Some(v) = &e.request_id {
        line.push_str(&format!(" request={}", quoted(v)));
    }
    if e.count > 1 {
        line.push_str(&format!(" count={}", e.count));
        if let Some(last) = e.last_at {
            line.push_str(&format!(" last={}", last.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
        }
    }
    line
}

/// A value as is when it is plain, else JSON-quoted (so a line stays one line).
fn quoted(v: &str) -> String {
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\') {
        v.to_owned()
    } else {
        serde_json::Value::String(v.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_name_known_fields_and_stay_one_line() {
        let e = Entry {
            id: 7,
            at: DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().with_timezone(&Utc),
            outcome: "failure".into(),
            reason: "bad-password".into(),
            credential: "password".into(),
            operation: "login".into(),
            workspace: Some("acme".into()),
            user_id: Some("u-1".into()),
            key_id: None,
            username: Some("al ice\n".into()),
            username_digest: None,
            client: Some("127.0.0.1".into()),
            source: "http".into(),
            request_id: Some("r-1".into()),
            count: 1,
            last_at: None,
        };
        assert_eq!(
            render_text(&e),
            "2026-01-02T03:04:05.000Z #7 failure bad-password login password workspace=acme user=u-1 \
             username=\"al ice\\n\" client=127.0.0.1 source=http request=r-1"
        );
        let later = e.at + chrono::Duration::milliseconds(80);
        let coalesced = Entry { count: 3, last_at: Some(later), ..e };
        assert!(render_text(&coalesced).ends_with(" request=r-1 count=3 last=2026-01-02T03:04:05.080Z"));
    }
}
