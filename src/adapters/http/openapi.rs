//! The OpenAPI 3.1 document of iamd's HTTP API, generated from the handlers' annotations
//! (utoipa) and served at `/api/v1/openapi.json`, with a browsable Swagger UI at `/docs`
//! whose assets are built into the binary (it works with no network).

use super::bodies;
use super::rest;
use crate::protocol::{
    ApiKeyInput, ApiKeyRecord, ErrorKind, IamError, IamRequest, IamResponse, UserInput, UserRecord,
    WorkspaceInput, WorkspaceRecord,
};
use actix_web::web;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "iamd",
        description = "Event-sourced identity and access management: workspaces, users, passwords, API keys \
            and EdDSA signing keys. Every endpoint but login, bootstrap-status, the health probes and the JWKS \
            needs `Authorization: Bearer tg_…` (an API key) or `Bearer <JWT>`; `POST /api/v1/iam` also takes \
            the API gateway's shared secret. A missing or invalid bearer is 401 `{\"error\":\"auth failure\"}`, \
            an operation the caller's roles do not grant 403 `{\"error\":\"access denied\"}`; protocol errors \
            are `{\"error\":{\"type\",\"message\"}}` with the status of their type.",
    ),
    paths(
        rest::login,
        rest::change_password,
        rest::logout_all,
        rest::validate,
        rest::introspect,
        rest::whoami,
        rest::bootstrap_status,
        rest::register,
        rest::request_verification,
        rest::verify_email,
        rest::request_password_reset,
        rest::complete_password_reset,
        rest::list_workspaces,
        rest::create_workspace,
        rest::get_workspace,
        rest::update_workspace,
        rest::disable_workspace,
        rest::list_users,
        rest::create_user,
        rest::get_user,
        rest::update_user,
        rest::delete_user,
        rest::disable_user,
        rest::enable_user,
        rest::reset_password,
        rest::list_api_keys,
        rest::create_api_key,
        rest::revoke_api_key,
        rest::issue_token,
        rest::rotate_signing_key,
        super::feed::audit_events,
        super::authentications::list_authentications,
        super::iam,
        super::jwks,
        super::healthz,
        readyz,
        metrics,
        super::v1::health,
        super::v1::list_users,
        super::v1::create_user,
        super::v1::get_user_by_id,
        super::v1::get_user,
        super::v1::update_user,
        super::v1::delete_user,
        super::v1::login,
        super::v1::logout,
        super::v1::verify,
        super::v1::reset_password,
        super::v1::validate_token,
        super::v1::issue_token,
    ),
    components(schemas(
        IamRequest, IamResponse, IamError, ErrorKind, UserInput, UserRecord, WorkspaceInput, WorkspaceRecord,
        ApiKeyInput, ApiKeyRecord,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Login, the caller itself, its password"),
        (name = "workspaces", description = "Tenants (`workspaces:admin`)"),
        (name = "users", description = "Users of a workspace (`users:read|write|admin`)"),
        (name = "api-keys", description = "API keys (`keys:self` for one's own, `keys:admin`)"),
        (name = "signing-keys", description = "The Ed25519 keys that sign and verify tokens"),
        (name = "protocol", description = "The IAM service protocol: one IamRequest, one IamResponse"),
        (name = "operations", description = "Health, readiness and metrics"),
        (name = "audit", description = "The history, for auditors (`audit:read`, admins)"),
        (name = "netsoc-v1", description = "Netsoc's iamd API, as its clients call it (docs/netsoc.md): the \
            accounts of `compat.workspace`, ES256 tokens (`Bearer <JWT>` from its login), `{\"message\"}` errors \
            as `application/problem+json`"),
    )
)]
pub struct ApiDoc;

/// The `bearer` security scheme the endpoints name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some("An API key (`tg_…`) or an EdDSA JWT from login".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
        let mut netsoc = Http::new(HttpAuthScheme::Bearer);
        netsoc.bearer_format = Some("JWT".into());
        netsoc.description =
            Some("An ES256 JWT from `POST /v1/users/{username}/login` (or issued); `/v1` only".into());
        components.add_security_scheme("netsoc", SecurityScheme::Http(netsoc));
    }
}

/// Mounts `/api/v1/openapi.json` and the Swagger UI under `/docs/`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(SwaggerUi::new("/docs/{_:.*}").url(DOCUMENT_PATH, ApiDoc::openapi()))
        .route("/docs", web::get().to(to_docs));
}

/// `/docs` → `/docs/`, where the UI lives.
async fn to_docs() -> actix_web::HttpResponse {
    actix_web::HttpResponse::PermanentRedirect().insert_header(("Location", "/docs/")).finish()
}

/// Readiness: 200 when the database answers, the schema is migrated and a signing key is
/// active; 503 with a short reason otherwise.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready: `{\"status\":\"ready\"}`"),
        (status = 503, description = "Not ready: `{\"status\":\"not ready\",\"reason\"}`"),
    ))]
#[allow(dead_code)]
fn readyz() {}

/// Prometheus metrics (`metrics:read`, admins): requests by operation, outcome and transport,
/// their latency, user / workspace / key gauges, keys created and revoked, running actors.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(("bearer" = [])),
    responses(
        (status = 200, description = "The metrics, in the Prometheus text format", content_type = "text/plain"),
        (status = 401, description = "No valid bearer", body = bodies::Refusal),
        (status = 403, description = "Not granted", body = bodies::Refusal),
    ))]
#[allow(dead_code)]
fn metrics() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_and_names_every_endpoint() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
        let paths: Vec<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
        for path in [
            "/api/v1/auth/login",
            "/api/v1/auth/logout-all",
            "/api/v1/workspaces/{ws}/users/{id}/api-keys",
            "/api/v1/api-keys/{id}",
            "/api/v1/iam",
            "/.well-known/jwks.json",
            "/metrics",
            "/api/v1/audit/events",
            "/api/v1/audit/authentications",
        ] {
            assert!(paths.contains(&path), "{path} missing from {paths:?}");
        }
        assert_eq!(doc["paths"].as_object().unwrap().len(), 38, "{paths:?}");
        for path in [
            "/v1/users",
            "/v1/users/id:{uid}",
            "/v1/users/{username}/login",
            "/v1/users/self/token",
            "/health",
        ] {
            assert!(paths.contains(&path), "{path} missing from {paths:?}");
        }
        let netsoc = &doc["paths"]["/v1/users/{username}"]["patch"];
        assert_eq!(netsoc["tags"], serde_json::json!(["netsoc-v1"]));
        assert!(netsoc["responses"]["403"]["content"].get("application/problem+json").is_some());
        assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
        for schema in ["IamRequest", "IamResponse", "UserRecord", "ErrorReply", "Refusal", "LoginReply"] {
            assert!(doc["components"]["schemas"].get(schema).is_some(), "schema {schema} missing");
        }
    }

    /// Every REST write takes an `Idempotency-Key`; its two refusals are documented on each.
    #[test]
    fn every_rest_write_documents_the_idempotency_key_refusals() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut writes = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            // Login and introspection POST, but change nothing; the account lifecycle's public
            // endpoints take no Idempotency-Key (nobody proven has request ids of its own).
            let reads = [
                "/api/v1/iam",
                "/api/v1/auth/login",
                "/api/v1/auth/introspect",
                "/api/v1/auth/register",
                "/api/v1/auth/verification",
                "/api/v1/auth/verify",
                "/api/v1/auth/password-reset",
                "/api/v1/auth/password-reset/complete",
            ];
            if !path.starts_with("/api/v1/") || reads.contains(&path.as_str()) {
                continue;
            }
            for method in ["post", "patch", "delete"] {
                let Some(op) = item.get(method) else { continue };
                writes += 1;
                let text = |status: &str| {
                    op["responses"][status]["description"].as_str().unwrap_or_default().to_owned()
                };
                assert!(text("409").contains("Idempotency-Key"), "{method} {path}: {}", text("409"));
                assert!(text("422").contains("Idempotency-Key"), "{method} {path}: {}", text("422"));
            }
        }
        assert_eq!(writes, 15);
    }

    #[test]
    fn trustgraphs_spellings_are_documented_as_aliases() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        for (schema, field, of) in [
            ("UserRecord", "default_workspace", "workspace"),
            ("IamResponse", "resolved_default_workspace", "resolved_workspace"),
        ] {
            assert!(schemas[schema]["properties"].get(of).is_some(), "{schema}.{of} missing");
            let description =
                schemas[schema]["properties"][field]["description"].as_str().unwrap_or_default();
            assert!(
                description.starts_with(&format!("Alias of `{of}`")),
                "{schema}.{field}: {description:?}"
            );
        }
        for field in ["client_ip", "user_context_json", "capability", "resource_json", "authorise_checks"] {
            assert!(schemas["IamRequest"]["properties"].get(field).is_some(), "IamRequest.{field} missing");
        }
    }
}
