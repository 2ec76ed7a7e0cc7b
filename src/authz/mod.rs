//! Authorisation: which capabilities each role grants, and in which workspaces.
//!
//! Pure and synchronous: no I/O, no state. The model follows TrustGraph's IAM design:
//! - three roles: reader (the read tier), writer (+ data writes), admin (+ administration);
//! - a role's scope is either its holder's home workspace ([`Scope::Assigned`]) or every
//!   workspace ([`Scope::All`]);
//! - a request is allowed if ANY of the caller's roles grants the capability and that
//!   role's scope permits the target workspace;
//! - unknown roles grant nothing and unknown capabilities are denied (fail closed);
//! - system capabilities ([`SYSTEM_CAPABILITIES`]) concern no workspace and need a role
//!   whose scope is [`Scope::All`].
//!
//! Whether the principal is enabled is the caller's concern, checked before [`allows`].

#[cfg(test)]
mod tests;

/// The roles this model knows. Anything else grants nothing.
pub const KNOWN_ROLES: [&str; 3] = ["reader", "writer", ADMIN_ROLE];
/// The role that administers (every workspace, and the system): a token's `is_admin`.
pub const ADMIN_ROLE: &str = "admin";

/// Where a role may act.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Only in the holder's home workspace.
    Assigned,
    /// In every workspace, and at system level.
    All,
}

// The capabilities iamd itself checks, named for its adapters and service. The data-plane
// capabilities (graph, documents, ...) are checked by other services and stay literals.

/// Manage one's own API keys.
pub const KEYS_SELF: &str = "keys:self";
/// List the workspaces one belongs to.
pub const WORKSPACES_LIST_OWN: &str = "workspaces:list-own";
/// Read users.
pub const USERS_READ: &str = "users:read";
/// Change users.
pub const USERS_WRITE: &str = "users:write";
/// Administer users (create, disable, reset passwords).
pub const USERS_ADMIN: &str = "users:admin";
/// Manage other users' API keys.
pub const KEYS_ADMIN: &str = "keys:admin";
/// Create, list and delete any workspace (system-level).
pub const WORKSPACES_ADMIN: &str = "workspaces:admin";
/// Administer iamd itself (system-level).
pub const IAM_ADMIN: &str = "iam:admin";
/// Read service metrics (system-level).
pub const METRICS_READ: &str = "metrics:read";
/// Read the audit trail (system-level).
pub const AUDIT_READ: &str = "audit:read";
/// Mint a token for a user with a caller-supplied context (TrustGraph's mint-token).
pub const MINT_TOKEN: &str = "mint-token";

// The three tiers below are TrustGraph 2.11.1's role definitions exactly
// (`trustgraph/iam/service/iam.py`: `_READER_CAPS`, `_WRITER_CAPS`, `_ADMIN_CAPS`), so that
// `authorise` answers its gateway as its own IAM service would. iamd's own capabilities,
// which no TrustGraph operation asks for, are kept apart in `IAMD_*_CAPABILITIES`.

/// What every role grants: reading data, and managing oneself. This is `reader`'s set.
pub const READER_CAPABILITIES: &[&str] = &[
    "agent",
    "graph:read",
    "triples:read",
    "sparql:read",
    "graph-rag:read",
    "graph-embeddings:read",
    "documents:read",
    "document-rag:read",
    "document-embeddings:read",
    "entity-contexts:read",
    "rows:read",
    "nlp-query:read",
    "structured-query:read",
    "row-embeddings:read",
    "llm",
    "embeddings",
    "reranker",
    "image-to-text",
    "cloze",
    "decision-scoring",
    "field-extraction",
    "mcp",
    "config:read",
    "flows:read",
    "collections:read",
    "knowledge:read",
    KEYS_SELF,
];

/// What `writer` adds to the reader's set: writing data.
pub const DATA_WRITE_CAPABILITIES: &[&str] = &[
    "graph:write",
    "triples:write",
    "graph-embeddings:write",
    "document-embeddings:write",
    "entity-contexts:write",
    "documents:write",
    "rows:write",
    "collections:write",
    "knowledge:write",
];

/// What `admin` adds to the writer's set: administration.
pub const ADMINISTRATION_CAPABILITIES: &[&str] = &[
    "config:write",
    "flows:write",
    USERS_READ,
    USERS_WRITE,
    USERS_ADMIN,
    KEYS_ADMIN,
    WORKSPACES_ADMIN,
    IAM_ADMIN,
    METRICS_READ,
    MINT_TOKEN,
];

/// iamd's own addition for every role: listing the workspaces one belongs to.
pub const IAMD_MEMBER_CAPABILITIES: &[&str] = &[WORKSPACES_LIST_OWN];

/// iamd's own addition for admins: reading the audit trail.
pub const IAMD_ADMIN_CAPABILITIES: &[&str] = &[AUDIT_READ];

/// The capability tiers each role grants; each capability is written in one tier only.
fn tiers_of(role: &str) -> &'static [&'static [&'static str]] {
    match role {
        "reader" => &[READER_CAPABILITIES, IAMD_MEMBER_CAPABILITIES],
        "writer" => &[READER_CAPABILITIES, DATA_WRITE_CAPABILITIES, IAMD_MEMBER_CAPABILITIES],
        "admin" => &[
            READER_CAPABILITIES,
            DATA_WRITE_CAPABILITIES,
            ADMINISTRATION_CAPABILITIES,
            IAMD_MEMBER_CAPABILITIES,
            IAMD_ADMIN_CAPABILITIES,
        ],
        _ => &[],
    }
}

/// The capabilities `role` grants in TrustGraph's own table (iamd's additions left out).
pub fn upstream_capabilities_of(role: &str) -> impl Iterator<Item = &'static str> + Clone {
    capabilities_of(role)
        .filter(|c| !IAMD_MEMBER_CAPABILITIES.contains(c) && !IAMD_ADMIN_CAPABILITIES.contains(c))
}

/// Capabilities that concern no workspace: only a role with [`Scope::All`] may use them,
/// whatever target is given.
pub const SYSTEM_CAPABILITIES: &[&str] = &[WORKSPACES_ADMIN, IAM_ADMIN, METRICS_READ, AUDIT_READ];

/// The capabilities `role` grants; none for an unknown role.
pub fn capabilities_of(role: &str) -> impl Iterator<Item = &'static str> + Clone {
    tiers_of(role).iter().flat_map(|tier| tier.iter().copied())
}

/// Where `role` may act; `None` for an unknown role.
pub fn scope_of(role: &str) -> Option<Scope> {
    match role {
        "reader" | "writer" => Some(Scope::Assigned),
        "admin" => Some(Scope::All),
        _ => None,
    }
}

/// Whether some known role grants `capability`.
pub fn is_known_capability(capability: &str) -> bool {
    KNOWN_ROLES.iter().any(|role| capabilities_of(role).any(|c| c == capability))
}

/// Whether `capability` is system-level (concerns no workspace).
pub fn is_system_capability(capability: &str) -> bool {
    SYSTEM_CAPABILITIES.contains(&capability)
}

/// The decision for a caller with `roles` whose home workspace is `home`: may they use
/// `capability` on `target` (`None`: no particular workspace)? True iff any one role both
/// grants the capability and has a scope that permits the target.
pub fn allows(roles: &[String], home: &str, capability: &str, target: Option<&str>) -> bool {
    roles.iter().any(|role| role_allows(role, home, capability, target))
}

/// The decision for one role; unknown roles and unknown capabilities give `false`.
fn role_allows(role: &str, home: &str, capability: &str, target: Option<&str>) -> bool {
    let Some(scope) = scope_of(role) else { return false };
    capabilities_of(role).any(|c| c == capability) && scope_permits(scope, home, capability, target)
}

/// Whether `scope` reaches `target` for `capability`, given the holder's `home` workspace.
fn scope_permits(scope: Scope, home: &str, capability: &str, target: Option<&str>) -> bool {
    match scope {
        Scope::All => true,
        Scope::Assigned if is_system_capability(capability) => false,
        Scope::Assigned => target.is_none_or(|workspace| workspace == home),
    }
}
