//! Request ids and the access log. Every HTTP request gets an id — the caller's
//! `X-Request-Id` when it is sane (at most 64 of `[A-Za-z0-9._-]`), else a fresh UUID — which
//! the response echoes in `X-Request-Id`. The request is handled inside a tracing span
//! carrying the id, method and path, so every line logged on its task carries them too, and
//! it ends with one access line: status and duration. Query strings and header values are
//! never logged.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage as _;
use std::time::Instant;
use tracing::Instrument;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id taken from a caller.
const MAX_LEN: usize = 64;

/// The request's id, in the request's extensions for handlers (the authentication audit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The caller's request id, when it is one we may echo and log as is.
fn sane(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LEN
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The request's id: the incoming header when sane, else a fresh UUID.
fn request_id(incoming: Option<&HeaderValue>) -> String {
    incoming.and_then(|v| v.to_str().ok()).filter(|v| sane(v)).map(str::to_owned).unwrap_or_else(fresh_id)
}

/// A random (v4) UUID from the thread's CSPRNG, which reseeds from the OS now and then, rather
/// than a `getrandom` system call on every request.
fn fresh_id() -> String {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string()
}

/// The middleware (`actix_web::middleware::from_fn(request_id::middleware)`).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request_id(req.headers().get(&HEADER));
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("http", request_id = %id, method = %req.method(), path = %req.path());
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let _entered = span.enter();
    match result {
        Ok(mut res) => {
            tracing::info!(status = res.status().as_u16(), duration_ms, "request");
            if let Ok(value) = HeaderValue::from_str(&id) {
                res.headers_mut().insert(HEADER, value);
            }
            Ok(res)
        }
        Err(e) => {
            // Handlers answer with responses; an error here comes from a middleware.
            tracing::info!(status = e.as_response_error().status_code().as_u16(), duration_ms, "request");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept_and_others_replaced() {
        for kept in ["abc", "req-1.2_3", &"a".repeat(MAX_LEN)] {
            assert_eq!(request_id(Some(&HeaderValue::from_str(kept).unwrap())), kept);
        }
        for replaced in ["", "has space", "semi;colon", "new\tline", "ünï", &"a".repeat(MAX_LEN + 1)] {
            let given = HeaderValue::from_bytes(replaced.as_bytes()).ok();
            let id = request_id(given.as_ref());
            assert_ne!(id, replaced);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{replaced:?} -> {id}");
        }
        assert!(uuid::Uuid::parse_str(&request_id(None)).is_ok());
    }

    #[actix_web::test]
    async fn the_response_echoes_the_id() {
        use actix_web::{test, web, App, HttpResponse};
        let app = test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(middleware))
                .route("/", web::get().to(HttpResponse::Ok)),
        )
        .await;
        let res =
            test::call_service(&app, test::TestRequest::get().insert_header((HEADER, "r-1")).to_request())
                .await;
        assert_eq!(res.headers().get(&HEADER).unwrap(), "r-1");
        let res =
            test::call_service(&app, test::TestRequest::get().insert_header((HEADER, "bad id")).to_request())
                .await;
        let id = res.headers().get(&HEADER).unwrap().to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }
}
