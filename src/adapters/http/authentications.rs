//! `GET /api/v1/audit/authentications`: the authentication audit for auditors (`audit:read`,
//! admins) — every login and resolve-api-key outcome and every failed HTTP bearer, with its
//! reason bucket (see [`crate::authn_audit`]). Pages by id: `after` = the previous
//! page's `next_after`. Also [`origin`]: what the HTTP adapter tells the service about a
//! caller (its peer address and the request's id), never something a body can claim.

use super::bodies::{ErrorReply, Refusal};
use super::request_id::RequestId;
use super::{auth, error_body, query, HttpState};
use crate::authn_audit::{self as audit, Entry, Filter, Origin, Outcome};
use crate::protocol::IamError;
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage as _, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where the audit is served.
pub const PATH: &str = "/api/v1/audit/authentications";
/// Records per page when the caller names no `limit`.
pub const DEFAULT_LIMIT: i64 = 100;
/// The most records one page carries.
pub const MAX_LIMIT: i64 = 1_000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(PATH, web::get().to(list_authentications));
}

/// The HTTP caller as the transport knows it: the peer's IP address (not `X-Forwarded-For`,
/// which anyone can write) and the request's `X-Request-Id`.
pub fn origin(req: &HttpRequest) -> Origin {
    Origin {
        source: "http".into(),
        client: req.peer_addr().map(|a| a.ip().to_canonical().to_string()),
        request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
    }
}

/// A page of the audit.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuthenticationPage {
    /// Oldest id first.
    pub items: Vec<Entry>,
    /// The id of the last item, or the `after` given when there is none: pass it as `after`.
    pub next_after: i64,
}

/// The query string as given; each value is checked by [`ListQuery::parse`].
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawQuery {
    after: Option<String>,
    limit: Option<String>,
    user_id: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ListQuery {
    after: i64,
    limit: i64,
    filter: Filter,
}

impl ListQuery {
    fn parse(query_string: &str) -> Result<ListQuery, IamError> {
        let raw = web::Query::<RawQuery>::from_query(query_string)
            .map_err(|_| IamError::invalid("the query string is malformed"))?
            .into_inner();
        let after = query::after(raw.after.as_deref(), "a record id")?;
        let limit = query::limit(raw.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
        let user_id = raw.user_id.filter(|u| !u.is_empty());
        if user_id.as_ref().is_some_and(|u| u.len() > audit::MAX_FIELD || u.contains('\0')) {
            return Err(IamError::invalid(format!("user_id must be at most {} bytes", audit::MAX_FIELD)));
        }
        let outcome = match raw.outcome.as_deref().filter(|o| !o.is_empty()) {
            None => None,
            Some(o) => Some(
                Outcome::parse(o).ok_or_else(|| IamError::invalid("outcome must be success or failure"))?,
            ),
        };
        let since = instant("since", raw.since.as_deref())?;
        let until = instant("until", raw.until.as_deref())?;
        Ok(ListQuery { after, limit, filter: Filter { user_id, outcome, since, until } })
    }
}

fn instant(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, IamError> {
    use crate::protocol::time;
    time::optional_instant(value.unwrap_or_default())
        .map_err(|_| IamError::invalid(format!("{name} must be an RFC 3339 instant, e.g. {}", time::EXAMPLE)))
}

/// The authentication audit: login and resolve-api-key outcomes and failed bearers, oldest
/// id first, with their reason bucket (`bad-password`, `revoked-or-unknown`, …) — for
/// auditors only: callers always get the one `auth-failed`. Never a password, key or hash.
/// Records are written in batches, so the latest may appear a moment (about 100 ms) late.
#[utoipa::path(get, path = "/api/v1/audit/authentications", tag = "audit", security(("bearer" = [])),
    params(
        ("after" = Option<i64>, Query, description = "The `next_after` of the previous page; 0, the default, is the start"),
        ("limit" = Option<u32>, Query, description = "At most this many records, 1–1000 (default 100; more is capped)"),
        ("user_id" = Option<String>, Query, description = "Only records about this user"),
        ("outcome" = Option<String>, Query, description = "Only `success` or only `failure`"),
        ("since" = Option<String>, Query, description = "Only records at or after this RFC 3339 instant"),
        ("until" = Option<String>, Query, description = "Only records at or before this RFC 3339 instant"),
    ),
    responses(
        (status = 200, description = "A page of records", body = AuthenticationPage),
        (status = 400, description = "invalid-argument: a parameter is malformed", body = ErrorReply),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "The caller's roles do not grant `audit:read`", body = Refusal),
        (status = 503, description = "internal-error: the database is unavailable", body = ErrorReply),
    ))]
pub async fn list_authentications(req: HttpRequest, state: web::Data<HttpState>) -> HttpResponse {
    let caller = match auth::user_caller(&req, &state).await {
        Ok(caller) => caller,
        Err(reply) => return reply,
    };
    let query = match ListQuery::parse(req.query_string()) {
        Ok(q) => q,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, e),
    };
    match state.service.authentication_records(&caller, &query.filter, query.after, query.limit).await {
        Ok(items) => {
            let next_after = items.last().map_or(query.after, |e| e.id);
            HttpResponse::Ok()
                .insert_header(("Cache-Control", "no-store"))
                .json(AuthenticationPage { items, next_after })
        }
        Err(failure) => auth::read_failed(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<ListQuery, String> {
        ListQuery::parse(q).map_err(|e| e.message)
    }

    #[test]
    fn defaults_apply_and_filters_are_read() {
        assert_eq!(parse(""), Ok(ListQuery { after: 0, limit: DEFAULT_LIMIT, filter: Filter::default() }));
        let q = parse("after=5&limit=99999&user_id=u-1&outcome=failure&since=2026-01-01T00:00:00Z").unwrap();
        assert_eq!((q.after, q.limit), (5, MAX_LIMIT));
        assert_eq!(q.filter.user_id.as_deref(), Some("u-1"));
        assert_eq!(q.filter.outcome, Some(Outcome::Failure));
        assert!(q.filter.since.is_some() && q.filter.until.is_none());
        assert_eq!(parse("user_id=&outcome=").unwrap().filter, Filter::default());
    }

    #[test]
    fn bad_values_are_refused_with_a_readable_message() {
        for (q, field) in [
            ("after=-1", "after"),
            ("after=x", "after"),
            ("limit=0", "limit"),
            ("limit=many", "limit"),
            ("outcome=maybe", "outcome"),
            ("since=yesterday", "since"),
            ("until=2026-13-01", "until"),
        ] {
            let message = parse(q).expect_err(q);
            assert!(message.starts_with(field) && !message.contains('\n'), "{q}: {message}");
        }
        assert!(parse(&format!("user_id={}", "u".repeat(audit::MAX_FIELD + 1))).is_err());
    }
}
