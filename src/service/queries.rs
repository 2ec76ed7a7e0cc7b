//! Every read the service makes: SQL over the read tables (`workspaces`, `users`, `api_keys`)
//! and `signing_keys`, in one place. Queries never read the event log — but for one latch,
//! whether `system.bootstrapped` was ever recorded ([`BOOTSTRAPPED`]); the inline
//! projections keep these tables current in the append transaction (invariant 4).

use super::page::Page;
use crate::domain::iso;
use crate::metrics::Population;
use crate::protocol::{ApiKeyRecord, IamError, UserRecord, WorkspaceRecord};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio_postgres::Row;

/// The columns of a `UserRecord`, from `users u`.
macro_rules! user_columns {
    () => {
        "u.id, u.workspace, u.username, u.name, u.email, u.roles, u.enabled, u.must_change_password, u.created, \
         u.first_name, u.last_name, u.ssh_key, u.verified, u.renewed"
    };
}

/// A user's record and credentials, joined with its workspace; completed by a `WHERE`.
macro_rules! select_credentials {
    ($where:literal) => {
        concat!(
            "SELECT ",
            user_columns!(),
            ", u.password_hash, u.account_version, u.enabled AND w.enabled AS usable \
             FROM users u JOIN workspaces w ON w.id = u.workspace WHERE ",
            $where
        )
    };
}

const SELECT_USER: &str = concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = $1");
/// A page condition on (created, id), completed by the page's parameters: start after
/// ($n, $n+1) unless $n is NULL, at most $n+2 rows (NULL: all).
macro_rules! after_page {
    ($created:literal, $id:literal, $n:literal, $m:literal, $l:literal) => {
        concat!(
            " AND ($",
            $n,
            "::timestamptz IS NULL OR (",
            $created,
            ", ",
            $id,
            ") > ($",
            $n,
            "::timestamptz, $",
            $m,
            "::text)) ORDER BY ",
            $created,
            ", ",
            $id,
            " LIMIT $",
            $l,
            "::bigint"
        )
    };
}

const LIST_USERS: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users u WHERE u.workspace = $1",
    after_page!("u.created", "u.id", "2", "3", "4")
);
const LIST_ALL_USERS: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users u WHERE true",
    after_page!("u.created", "u.id", "1", "2", "3")
);
const CREDENTIALS_BY_USERNAME: &str =
    select_credentials!("u.id = (SELECT user_id FROM unique_usernames WHERE username_key = $1)");
const CREDENTIALS_BY_ID: &str = select_credentials!("u.id = $1");

/// Whether iamd counts as bootstrapped: a user holds the `admin` role, or a bootstrap was
/// ever recorded (a latch: deleting every admin afterwards does not reopen bootstrap, which
/// TrustGraph's gateway lets anyone call).
const BOOTSTRAPPED: &str = "SELECT EXISTS (SELECT 1 FROM users WHERE 'admin' = ANY (roles)) \
     OR EXISTS (SELECT 1 FROM events WHERE stream = 'system' AND event_type = 'system.bootstrapped')";
const SELECT_WORKSPACE: &str = "SELECT id, name, enabled, created FROM workspaces WHERE id = $1";
const LIST_WORKSPACES: &str = concat!(
    "SELECT id, name, enabled, created FROM workspaces WHERE true",
    after_page!("created", "id", "1", "2", "3")
);
const LIST_KEYS: &str = concat!(
    "SELECT id, user_id, name, prefix, expires, created, last_used FROM api_keys WHERE user_id = $1",
    after_page!("created", "id", "2", "3", "4")
);
const SELECT_KEY_OWNER: &str = "SELECT workspace, user_id FROM api_keys WHERE id = $1";
/// resolve-api-key: one primary-key lookup joined with the owner and its workspace.
const RESOLVE_KEY: &str = "SELECT k.id, k.user_id, k.workspace, k.expires, u.roles, \
    u.enabled AND w.enabled AS usable \
    FROM api_keys k JOIN users u ON u.id = k.user_id JOIN workspaces w ON w.id = k.workspace \
    WHERE k.key_hash = $1";
const TOUCH_KEY: &str = "UPDATE api_keys SET last_used = $2 WHERE id = $1 \
    AND (last_used IS NULL OR last_used < $2)";
/// The gauges of `GET /metrics`: one round trip. Revoked keys have no row; expired ones do.
const POPULATION: &str = "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM workspaces), \
    (SELECT count(*) FROM api_keys WHERE expires IS NULL OR expires > now())";
/// Readiness: an active signing key exists, so logins can be signed.
const ACTIVE_SIGNING_KEY: &str =
    "SELECT EXISTS (SELECT 1 FROM signing_keys WHERE valid_until IS NULL AND algorithm = 'EdDSA')";
const SELECT_SIGNING_KEYS: &str =
    "SELECT kid, public_key, private_key, kek, created, valid_until, algorithm \
    FROM signing_keys WHERE valid_until IS NULL OR valid_until > now() ORDER BY created";

/// What login and change-password need to know about a user.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub record: UserRecord,
    pub password_hash: Option<String>,
    pub account_version: i64,
    /// The user and its workspace are both enabled.
    pub usable: bool,
    /// When the account was last renewed; `None`: never.
    pub renewed: Option<DateTime<Utc>>,
}

impl Credentials {
    /// When a renewal token of this account expires (`validity` being
    /// `accounts.renewal_validity`): `renewed + validity`, never clamped — a never-renewed
    /// account counts from 0001-01-01T00:00:00Z, as Netsoc's iamd does, so its token expires in
    /// year 2 and the accounts UI shows "Never Renewed".
    pub fn renewal_expiry(&self, validity: chrono::Duration) -> DateTime<Utc> {
        let base = self.renewed.unwrap_or_else(crate::domain::never_renewed);
        base.checked_add_signed(validity).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

pub use crate::projections::key_cache::ResolvedKey;

/// A signing key row still able to verify tokens.
pub struct SigningKeyRow {
    pub kid: String,
    /// `EdDSA` or `ES256`.
    pub algorithm: String,
    pub public: Vec<u8>,
    /// The private half as stored (sealed when `sealed_by` is set); None once retired.
    pub private: Option<Vec<u8>>,
    /// The fingerprint of the KEK that sealed `private`.
    pub sealed_by: Option<String>,
    pub created: DateTime<Utc>,
    pub valid_until: Option<DateTime<Utc>>,
}

/// Logs the cause and returns the generic internal error.
fn db_error(what: &'static str) -> impl Fn(tokio_postgres::Error) -> IamError {
    move |e| {
        if e.code().is_some_and(is_data_exception) {
            // A value the request carried that PostgreSQL cannot hold or compare (validation
            // should have caught it first): the caller's mistake, not iamd's.
            tracing::warn!(query = what, error = %crate::db::error_line(&e), "a request value PostgreSQL refused");
            return IamError::invalid("a value in the request cannot be stored or compared");
        }
        tracing::error!(query = what, error = %crate::db::error_line(&e), "read query failed");
        IamError::internal()
    }
}

/// SQLSTATE class 22, "data exception": a value out of range, an invalid character (a NUL),
/// an impossible date — errors about data, which in a read query comes from the request.
fn is_data_exception(code: &tokio_postgres::error::SqlState) -> bool {
    code.code().starts_with("22")
}

#[derive(Clone)]
pub struct Queries {
    pool: Pool,
}

impl Queries {
    pub fn new(pool: Pool) -> Self {
        Queries { pool }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, IamError> {
        self.pool.get().await.map_err(|e| {
            tracing::error!(error = %e, "no database connection");
            IamError::internal()
        })
    }

    async fn query(
        &self,
        what: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, IamError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(db_error(what))?;
        client.query(&stmt, params).await.map_err(db_error(what))
    }

    /// A new integer user id: the `user_numbers` sequence's next (never one given before).
    pub async fn next_user_number(&self) -> Result<i32, IamError> {
        let rows = self.query("next_user_number", "SELECT nextval('user_numbers')::integer", &[]).await?;
        rows.first().map(|r| r.get(0)).ok_or_else(IamError::internal)
    }

    /// The rows of a read query another service module owns (`what` names it in the log).
    pub(super) async fn rows(
        &self,
        what: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, IamError> {
        self.query(what, sql, params).await
    }

    /// Whether an admin exists (or a bootstrap was ever recorded): see [`BOOTSTRAPPED`].
    pub async fn bootstrapped(&self) -> Result<bool, IamError> {
        let rows = self.query("bootstrapped", BOOTSTRAPPED, &[]).await?;
        Ok(rows.first().is_some_and(|r| r.get::<_, bool>(0)))
    }

    pub async fn workspace(&self, id: &str) -> Result<Option<WorkspaceRecord>, IamError> {
        let rows = self.query("workspace", SELECT_WORKSPACE, &[&id]).await?;
        Ok(rows.first().map(workspace_record))
    }

    /// A page of workspaces, and the cursor of the next page (empty on the last).
    pub async fn workspaces(&self, page: &Page) -> Result<(Vec<WorkspaceRecord>, String), IamError> {
        let (at, id) = page_params(page);
        let rows = self.query("workspaces", LIST_WORKSPACES, &[&at, &id, &page.fetch()]).await?;
        let (rows, next) = page.cut(rows, row_key);
        Ok((rows.iter().map(workspace_record).collect(), next))
    }

    pub async fn user(&self, id: &str) -> Result<Option<UserRecord>, IamError> {
        let rows = self.query("user", SELECT_USER, &[&id]).await?;
        Ok(rows.first().map(user_record))
    }

    /// A page of a workspace's users, and the cursor of the next page (empty on the last).
    /// A page of the users of `workspace`, or of every workspace (`None`), and the cursor of
    /// the next page (empty on the last).
    pub async fn users(
        &self,
        workspace: Option<&str>,
        page: &Page,
    ) -> Result<(Vec<UserRecord>, String), IamError> {
        let (at, id) = page_params(page);
        let rows = match workspace {
            Some(ws) => self.query("users", LIST_USERS, &[&ws, &at, &id, &page.fetch()]).await?,
            None => self.query("all_users", LIST_ALL_USERS, &[&at, &id, &page.fetch()]).await?,
        };
        let (rows, next) = page.cut(rows, row_key);
        Ok((rows.iter().map(user_record).collect(), next))
    }

    /// Login's lookup, by username: by its comparison key (unique across workspaces).
    pub async fn credentials_by_username(&self, username: &str) -> Result<Option<Credentials>, IamError> {
        let key = crate::domain::username::lookup_key(username);
        let rows = self.query("credentials_by_username", CREDENTIALS_BY_USERNAME, &[&key]).await?;
        Ok(rows.first().map(credentials))
    }

    pub async fn credentials_by_id(&self, user_id: &str) -> Result<Option<Credentials>, IamError> {
        let rows = self.query("credentials_by_id", CREDENTIALS_BY_ID, &[&user_id]).await?;
        Ok(rows.first().map(credentials))
    }

    /// A page of a user's active keys, and the cursor of the next page (empty on the last).
    pub async fn api_keys(
        &self,
        user_id: &str,
        page: &Page,
    ) -> Result<(Vec<ApiKeyRecord>, String), IamError> {
        let (at, id) = page_params(page);
        let rows = self.query("api_keys", LIST_KEYS, &[&user_id, &at, &id, &page.fetch()]).await?;
        let (rows, next) = page.cut(rows, row_key);
        let records = rows
            .iter()
            .map(|r| ApiKeyRecord {
                id: r.get("id"),
                user_id: r.get("user_id"),
                name: r.get("name"),
                prefix: r.get("prefix"),
                expires: r.get::<_, Option<DateTime<Utc>>>("expires").map(iso).unwrap_or_default(),
                created: iso(r.get("created")),
                last_used: r.get::<_, Option<DateTime<Utc>>>("last_used").map(iso).unwrap_or_default(),
            })
            .collect();
        Ok((records, next))
    }

    /// The (workspace, user id) owning an API key that is not revoked.
    pub async fn key_owner(&self, key_id: &str) -> Result<Option<(String, String)>, IamError> {
        let rows = self.query("key_owner", SELECT_KEY_OWNER, &[&key_id]).await?;
        Ok(rows.first().map(|r| (r.get(0), r.get(1))))
    }

    pub async fn resolve_key(&self, key_hash: &[u8; 32]) -> Result<Option<ResolvedKey>, IamError> {
        let hash: &[u8] = key_hash;
        let rows = self.query("resolve_key", RESOLVE_KEY, &[&hash]).await?;
        Ok(rows.first().map(|r| ResolvedKey {
            key_id: r.get("id"),
            user_id: r.get("user_id"),
            workspace: r.get("workspace"),
            roles: r.get("roles"),
            expires: r.get("expires"),
            usable: r.get("usable"),
        }))
    }

    /// Stamps `last_used` (coalesced by the caller: not an event, not on the reply's path).
    pub async fn touch_key(&self, key_id: &str, at: DateTime<Utc>) -> Result<(), IamError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(TOUCH_KEY).await.map_err(db_error("touch_key"))?;
        client.execute(&stmt, &[&key_id, &at]).await.map_err(db_error("touch_key"))?;
        Ok(())
    }

    /// A user's integer id (`None`: not numbered yet, or no such user).
    pub async fn user_number(&self, user_id: &str) -> Result<Option<i32>, IamError> {
        let rows = self.query("user_number", "SELECT number FROM users WHERE id = $1", &[&user_id]).await?;
        Ok(rows.first().and_then(|r| r.get(0)))
    }

    /// The signing keys that still verify: the active one and those in grace, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, IamError> {
        let rows = self.query("signing_keys", SELECT_SIGNING_KEYS, &[]).await?;
        Ok(rows
            .iter()
            .map(|r| SigningKeyRow {
                kid: r.get("kid"),
                algorithm: r.get("algorithm"),
                public: r.get("public_key"),
                private: r.get("private_key"),
                sealed_by: r.get("kek"),
                created: r.get("created"),
                valid_until: r.get("valid_until"),
            })
            .collect())
    }

    /// How many users, workspaces and active API keys there are (the metrics' gauges).
    pub async fn population(&self) -> Result<Population, IamError> {
        let rows = self.query("population", POPULATION, &[]).await?;
        let row = rows.first().ok_or_else(IamError::internal)?;
        Ok(Population { users: row.get(0), workspaces: row.get(1), api_keys: row.get(2) })
    }

    /// Why this process cannot serve yet (`GET /readyz`), as a short reason with no
    /// internals; `Ok` when the database answers, the schema is migrated and an active
    /// signing key exists.
    pub async fn readiness(&self) -> Result<(), &'static str> {
        if !self.ping().await {
            return Err("database unavailable");
        }
        match crate::store::migrations::is_migrated(&self.pool).await {
            Ok(true) => {}
            Ok(false) => return Err("database schema not migrated"),
            Err(_) => return Err("database unavailable"),
        }
        let rows = self.query("active_signing_key", ACTIVE_SIGNING_KEY, &[]).await;
        match rows.as_deref().map(|r| r.first().is_some_and(|row| row.get::<_, bool>(0))) {
            Ok(true) => Ok(()),
            Ok(false) => Err("no active signing key"),
            Err(_) => Err("database unavailable"),
        }
    }

    /// True when the database answers (health checks).
    pub async fn ping(&self) -> bool {
        match self.client().await {
            Ok(c) => c.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    }
}

fn workspace_record(r: &Row) -> WorkspaceRecord {
    WorkspaceRecord {
        id: r.get("id"),
        name: r.get("name"),
        enabled: r.get("enabled"),
        created: iso(r.get("created")),
    }
}

fn user_record(r: &Row) -> UserRecord {
    UserRecord {
        id: r.get("id"),
        workspace: r.get("workspace"),
        username: r.get("username"),
        name: r.get("name"),
        email: r.get("email"),
        roles: r.get("roles"),
        enabled: r.get("enabled"),
        must_change_password: r.get("must_change_password"),
        created: iso(r.get("created")),
        first_name: r.get("first_name"),
        last_name: r.get("last_name"),
        ssh_key: r.get("ssh_key"),
        verified: r.get("verified"),
        renewed: r.get::<_, Option<DateTime<Utc>>>("renewed").map(iso).unwrap_or_default(),
    }
}

fn credentials(r: &Row) -> Credentials {
    Credentials {
        record: user_record(r),
        password_hash: r.get("password_hash"),
        account_version: r.get("account_version"),
        usable: r.get("usable"),
        renewed: r.get("renewed"),
    }
}

/// The page's start as query parameters.
fn page_params(page: &Page) -> (Option<DateTime<Utc>>, Option<String>) {
    match &page.after {
        Some((at, id)) => (Some(*at), Some(id.clone())),
        None => (None, None),
    }
}

/// A listed row's (created, id): what a cursor names.
fn row_key(row: &Row) -> (DateTime<Utc>, String) {
    (row.get("created"), row.get("id"))
}

#[cfg(test)]
mod tests {
    use super::is_data_exception;
    use tokio_postgres::error::SqlState;

    #[test]
    fn data_exceptions_are_the_callers_and_the_rest_are_ours() {
        for code in [
            SqlState::CHARACTER_NOT_IN_REPERTOIRE,
            SqlState::UNTRANSLATABLE_CHARACTER,
            SqlState::DATETIME_FIELD_OVERFLOW,
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
            SqlState::INVALID_TEXT_REPRESENTATION,
        ] {
            assert!(is_data_exception(&code), "{code:?}");
        }
        for code in [SqlState::UNIQUE_VIOLATION, SqlState::CONNECTION_FAILURE, SqlState::UNDEFINED_TABLE] {
            assert!(!is_data_exception(&code), "{code:?}");
        }
    }
}
