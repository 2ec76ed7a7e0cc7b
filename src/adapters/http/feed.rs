//! `GET /api/v1/audit/events?after=POSITION`: the live audit feed (`audit:read`, admins).
//! NDJSON of events in commit order, read with [`crate::store::tail`] so that an event that
//! commits late is never skipped (invariant 5). When the reader is caught up the request
//! long-polls: the service polls the log ([`crate::service::Service::log_after`]) until an
//! event arrives or `wait` runs out, holding no database connection in between. Payloads go through
//! [`crate::audit::redact::public_payload`]: password hashes and key digests never leave; a
//! line names what it withheld. `X-Next-After` says where to resume.

use super::bodies::{ErrorReply, Refusal};
use super::{auth, error_body, query, HttpState};
use crate::audit::redact::public_payload;
use crate::protocol::IamError;
use crate::store::tail::TailedEvent;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// Where the feed is served.
pub const PATH: &str = "/api/v1/audit/events";
/// The media type of the body: one JSON object per line.
pub const CONTENT_TYPE: &str = "application/x-ndjson";
/// The header naming the position to pass as `after` next.
pub const NEXT_AFTER: &str = "X-Next-After";
/// Events per response when the caller names no `limit`.
pub const DEFAULT_LIMIT: i64 = 1_000;
/// The most events one response carries.
pub const MAX_LIMIT: i64 = 10_000;
/// Seconds to wait for an event when caught up, when the caller names no `wait`.
pub const DEFAULT_WAIT_SECS: u64 = 25;
/// The longest a request waits.
pub const MAX_WAIT_SECS: u64 = 60;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(PATH, web::get().to(audit_events));
}

/// The query string as given; each value is checked by [`FeedQuery::parse`].
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawQuery {
    after: Option<String>,
    limit: Option<String>,
    wait: Option<String>,
}

/// What the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FeedQuery {
    /// The position of the last event the caller has; 0 is the start of the log.
    after: i64,
    limit: i64,
    wait: Duration,
}

impl FeedQuery {
    fn parse(query_string: &str) -> Result<FeedQuery, IamError> {
        let raw = web::Query::<RawQuery>::from_query(query_string)
            .map_err(|_| IamError::invalid("the query string is malformed"))?
            .into_inner();
        let after = query::after(raw.after.as_deref(), "an event position")?;
        let limit = query::limit(raw.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
        let wait = match raw.wait.as_deref() {
            None => DEFAULT_WAIT_SECS,
            Some(s) => s.trim().parse::<u64>().map(|w| w.min(MAX_WAIT_SECS)).map_err(|_| {
                IamError::invalid(format!("wait must be a whole number of seconds from 0 to {MAX_WAIT_SECS}"))
            })?,
        };
        Ok(FeedQuery { after, limit, wait: Duration::from_secs(wait) })
    }
}

/// One line of the feed: an event as an auditor may see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedLine {
    /// The event's global position; pass the last one as `after` to resume.
    pub position: i64,
    /// `system` or `workspace:<id>`.
    pub stream: String,
    /// The event's version in its stream, from 1.
    pub version: i64,
    #[schema(example = "user.created")]
    pub event_type: String,
    pub schema_version: i32,
    /// When the event was recorded, RFC 3339 UTC.
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: DateTime<Utc>,
    /// Who did it and through what: actor, request_id, source, operation.
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// The payload without the fields named in `withheld`.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// Payload fields withheld because they hold a secret's hash (`password_hash`,
    /// `key_hash`); absent when nothing was withheld.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub withheld: Vec<&'static str>,
}

impl FeedLine {
    fn of(tailed: TailedEvent) -> FeedLine {
        let e = tailed.event;
        let (payload, withheld) = public_payload(&e.payload);
        FeedLine {
            position: e.position,
            stream: e.stream,
            version: e.version,
            event_type: e.event_type,
            schema_version: e.schema_version,
            recorded_at: e.recorded_at,
            metadata: e.metadata,
            payload,
            withheld,
        }
    }
}

/// The live audit feed: events after `after` in commit order, one JSON object per line.
/// Returns at once when there are events; when caught up, waits up to `wait` seconds for
/// one (an empty body when none came). Resume with `after` = the `X-Next-After` header.
/// Gapless: an event that commits after a later-positioned one is still delivered, in commit
/// order; a long-running transaction anywhere in the database holds the feed back until it ends.
#[utoipa::path(get, path = "/api/v1/audit/events", tag = "audit", security(("bearer" = [])),
    params(
        ("after" = Option<i64>, Query, description = "The position of the last event already read (`X-Next-After`); 0, the default, is the start of the log"),
        ("limit" = Option<u32>, Query, description = "At most this many events, 1–10000 (default 1000; more is capped)"),
        ("wait" = Option<u32>, Query, description = "Seconds to wait for an event when caught up, 0–60 (default 25; more is capped)"),
    ),
    responses(
        (status = 200, description = "NDJSON: one `FeedLine` per line, in commit order (possibly none). \
            Header `X-Next-After`: the position of the last event sent, or the `after` given",
            body = FeedLine, content_type = "application/x-ndjson",
            headers(("X-Next-After" = i64, description = "Pass as `after` to resume"))),
        (status = 400, description = "invalid-argument: `after`, `limit` or `wait` is not a valid number, or no event has position `after`", body = ErrorReply),
        (status = 401, description = "No valid bearer", body = Refusal),
        (status = 403, description = "The caller's roles do not grant `audit:read`", body = Refusal),
        (status = 503, description = "internal-error: the database is unavailable", body = ErrorReply),
    ))]
pub async fn audit_events(req: HttpRequest, state: web::Data<HttpState>) -> HttpResponse {
    let caller = match auth::user_caller(&req, &state).await {
        Ok(caller) => caller,
        Err(reply) => return reply,
    };
    let query = match FeedQuery::parse(req.query_string()) {
        Ok(q) => q,
        Err(e) => return error_body(StatusCode::BAD_REQUEST, e),
    };
    let events = match state.service.log_after(&caller, query.after, query.limit, query.wait).await {
        Ok(events) => events,
        Err(failure) => return auth::read_failed(failure),
    };
    let next_after = events.last().map_or(query.after, |e| e.event.position);
    let mut body = String::new();
    for line in events.into_iter().map(FeedLine::of) {
        match serde_json::to_string(&line) {
            Ok(json) => {
                body.push_str(&json);
                body.push('\n');
            }
            Err(e) => {
                tracing::error!(position = line.position, error = %e, "an audit feed line did not serialise");
                return error_body(StatusCode::INTERNAL_SERVER_ERROR, IamError::internal());
            }
        }
    }
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .insert_header((NEXT_AFTER, next_after.to_string()))
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tail::Cursor;

    fn parse(q: &str) -> Result<FeedQuery, String> {
        FeedQuery::parse(q).map_err(|e| e.message)
    }

    #[test]
    fn defaults_apply_and_large_values_are_capped() {
        assert_eq!(
            parse(""),
            Ok(FeedQuery { after: 0, limit: DEFAULT_LIMIT, wait: Duration::from_secs(DEFAULT_WAIT_SECS) })
        );
        assert_eq!(
            parse("after=42&limit=999999&wait=3600"),
            Ok(FeedQuery { after: 42, limit: MAX_LIMIT, wait: Duration::from_secs(MAX_WAIT_SECS) })
        );
        assert_eq!(parse("wait=0&limit=7").map(|q| (q.limit, q.wait)), Ok((7, Duration::ZERO)));
    }

    #[test]
    fn bad_values_are_refused_with_a_readable_message() {
        for q in [
            "after=abc",
            "after=-1",
            "after=",
            "after=1.5",
            "limit=0",
            "limit=-3",
            "limit=x",
            "wait=-1",
            "wait=soon",
        ] {
            let message = parse(q).expect_err(q);
            assert!(!message.is_empty() && !message.contains('\n'), "{q}: {message}");
        }
        assert!(parse("after=abc").unwrap_err().starts_with("after"));
        assert!(parse("limit=0").unwrap_err().starts_with("limit"));
        assert!(parse("wait=soon").unwrap_err().starts_with("wait"));
    }

    #[test]
    fn a_line_withholds_hashes_and_names_them() {
        let event = crate::events::RecordedEvent {
            position: 3,
            stream: "workspace:acme".into(),
            version: 2,
            event_type: "user.created".into(),
            schema_version: 1,
            payload: serde_json::json!({"user_id": "u", "password_hash": "$argon2id$v=19$secret"}),
            metadata: serde_json::json!({"actor": "admin"}),
            recorded_at: Utc::now(),
            prev_hash: "p".into(),
            hash: "h".into(),
        };
        let line = FeedLine::of(TailedEvent { cursor: Cursor { transaction_id: 9, position: 3 }, event });
        let json = serde_json::to_value(&line).unwrap();
        assert_eq!(json["payload"], serde_json::json!({"user_id": "u"}));
        assert_eq!(json["withheld"], serde_json::json!(["password_hash"]));
        assert!(!json.to_string().contains("argon2id"));
        assert!(json.get("prev_hash").is_none() && json.get("hash").is_none());
    }
}
