//! The upstream extensions about the caller and its rights: whoami, list-my-workspaces,
//! bootstrap-status, authorise and authorise-many. All are queries: they read the read
//! tables, never the actors. The caller's identity is `actor` (the gateway, or iamd's own
//! HTTP authentication, puts the authenticated user id there).

use super::Service;
use crate::authz;
use crate::protocol::{IamError, IamRequest, IamResponse, UserRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How long a caller may cache an authorise decision. A revocation or role change takes at
/// most this long to reach a cache that honours it.
pub const DECISION_TTL_SECONDS: i64 = 60;

/// Most checks one authorise-many may carry.
pub const MAX_AUTHORISE_CHECKS: usize = 256;

/// One decision of authorise-many, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub allow: bool,
    pub ttl: i64,
}

impl Service {
    /// The user named by `actor`.
    async fn actor_user(&self, actor: &str) -> Result<UserRecord, IamError> {
        if actor.is_empty() {
            return Err(IamError::invalid("actor is required (the authenticated user id)"));
        }
        self.inner.queries.user(actor).await?.ok_or_else(|| IamError::not_found("user not found"))
    }

    pub(super) async fn whoami(&self, req: IamRequest) -> Result<IamResponse, IamError> {
        let user = self.actor_user(&req.actor).await?;
        Ok(IamResponse { user: Some(user), ..Default::default() })
    }

    /// An admin may act in every workspace, so it lists them all; anyone else its own.
    pub(super) async fn list_my_workspaces(&self, req: IamRequest) -> Result<IamResponse, IamError> {
        let user = self.actor_user(&req.actor).await?;
        let workspaces = if authz::allows(&user.roles, &user.workspace, authz::WORKSPACES_ADMIN, None) {
            self.inner.queries.workspaces(&super::page::Page::default()).await?.0
        } else {
            self.inner.queries.workspace(&user.workspace).await?.into_iter().collect()
        };
        Ok(IamResponse { workspaces, ..Default::default() })
    }

    /// Bootstrap is available until an admin exists (the workspace `default` may exist
    /// before: TrustGraph's bootstrapper creates it first).
    pub(super) async fn bootstrap_status(&self) -> Result<IamResponse, IamError> {
        let bootstrapped = self.inner.queries.bootstrapped().await?;
        Ok(IamResponse { bootstrap_available: !bootstrapped, ..Default::default() })
    }

    pub(super) async fn authorise(&self, req: IamRequest) -> Result<IamResponse, IamError> {
        if req.capability.is_empty() {
            return Err(IamError::invalid("capability is required"));
        }
        let subject = self.subject(&req.user_id).await?;
        let resource = json_object("resource_json", &req.resource_json)?;
        let parameters = json_object("parameters_json", &req.parameters_json)?;
        let allow = decide(subject.as_ref(), &req.capability, &resource, &parameters);
        Ok(IamResponse {
            decision_allow: allow,
            decision_ttl_seconds: DECISION_TTL_SECONDS,
            ..Default::default()
        })
    }

    pub(super) async fn authorise_many(&self, req: IamRequest) -> Result<IamResponse, IamError> {
        if req.authorise_checks.is_empty() {
            return Err(IamError::invalid("authorise_checks is required"));
        }
        let checks: Vec<Value> = serde_json::from_str(&req.authorise_checks)
            .map_err(|_| IamError::invalid("authorise_checks must be a JSON list"))?;
        if checks.len() > MAX_AUTHORISE_CHECKS {
            return Err(IamError::invalid(format!(
                "authorise_checks holds more than {MAX_AUTHORISE_CHECKS} checks"
            )));
        }
        let subject = self.subject(&req.user_id).await?;
        let empty = Map::new();
        let decisions: Vec<DecisionRecord> = checks
            .iter()
            .map(|check| {
                // A malformed check is a deny, not a failure of the whole batch.
                let capability = check.get("capability").and_then(Value::as_str).unwrap_or_default();
                let object = |field: &str| check.get(field).and_then(Value::as_object).unwrap_or(&empty);
                let allow = !capability.is_empty()
                    && decide(subject.as_ref(), capability, object("resource"), object("parameters"));
                DecisionRecord { allow, ttl: DECISION_TTL_SECONDS }
            })
            .collect();
        let decisions_json = serde_json::to_string(&decisions).map_err(|_| IamError::internal())?;
        Ok(IamResponse { decisions_json, ..Default::default() })
    }

    /// The user a decision is about, when it exists and may act (user and workspace enabled);
    /// `None` denies everything.
    async fn subject(&self, user_id: &str) -> Result<Option<UserRecord>, IamError> {
        if user_id.is_empty() {
            return Err(IamError::invalid("user_id is required"));
        }
        let found = self.inner.queries.credentials_by_id(user_id).await?;
        Ok(found.filter(|c| c.usable).map(|c| c.record))
    }
}

/// The decision for `subject`: the target workspace is the resource's `workspace`, else the
/// parameters'; none means the capability is asked for without a workspace.
fn decide(
    subject: Option<&UserRecord>,
    capability: &str,
    resource: &Map<String, Value>,
    parameters: &Map<String, Value>,
) -> bool {
    let Some(user) = subject else { return false };
    let target = [resource, parameters]
        .iter()
        .find_map(|m| m.get("workspace").and_then(Value::as_str).filter(|w| !w.is_empty()));
    authz::allows(&user.roles, &user.workspace, capability, target)
}

/// An optional JSON object field: empty reads as `{}`.
fn json_object(field: &str, text: &str) -> Result<Map<String, Value>, IamError> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(IamError::invalid(format!("{field} must be a JSON object"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(workspace: &str, roles: &[&str]) -> UserRecord {
        UserRecord {
            id: "u".into(),
            workspace: workspace.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            enabled: true,
            ..Default::default()
        }
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn the_resource_workspace_wins_over_the_parameters() {
        let reader = user("acme", &["reader"]);
        let own = map(json!({"workspace": "acme"}));
        let other = map(json!({"workspace": "globex"}));
        assert!(decide(Some(&reader), "graph:read", &own, &other));
        assert!(!decide(Some(&reader), "graph:read", &other, &own));
        assert!(decide(Some(&reader), "graph:read", &Map::new(), &own));
        assert!(!decide(Some(&reader), "graph:read", &Map::new(), &other));
        // An empty workspace names none.
        assert!(!decide(Some(&reader), "graph:read", &map(json!({"workspace": ""})), &other));
    }

    #[test]
    fn no_subject_is_denied_everything() {
        assert!(!decide(None, "graph:read", &Map::new(), &Map::new()));
    }

    #[test]
    fn json_objects_are_optional_but_must_be_objects() {
        assert!(json_object("resource_json", "").unwrap().is_empty());
        assert_eq!(json_object("resource_json", r#"{"workspace":"a"}"#).unwrap()["workspace"], "a");
        let err = json_object("resource_json", "[1]").unwrap_err();
        assert_eq!(err.message, "resource_json must be a JSON object");
        assert!(json_object("parameters_json", "{oops").is_err());
    }
}
