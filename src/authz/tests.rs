//! One test per rule of the capability model, plus the full role × target × capability
//! matrix checked against an expectation written independently here.

use super::*;

const HOME: &str = "ws-home";
const OTHER: &str = "ws-other";

fn roles(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

#[test]
fn known_roles_are_the_roles_the_domain_accepts() {
    assert_eq!(KNOWN_ROLES, crate::domain::rules::ROLES);
}

#[test]
fn each_role_is_granted_its_own_capabilities_in_its_home_workspace() {
    for role in KNOWN_ROLES {
        for capability in capabilities_of(role) {
            assert!(allows(&roles(&[role]), HOME, capability, Some(HOME)), "{role} {capability}");
        }
    }
}

#[test]
fn reader_and_writer_are_denied_in_another_workspace() {
    for role in ["reader", "writer"] {
        for capability in capabilities_of(role) {
            assert!(!allows(&roles(&[role]), HOME, capability, Some(OTHER)), "{role} {capability}");
        }
    }
}

#[test]
fn admin_is_allowed_in_any_workspace() {
    for capability in capabilities_of("admin") {
        for target in [Some(HOME), Some(OTHER), Some("ws-third"), None] {
            assert!(allows(&roles(&["admin"]), HOME, capability, target), "{capability} {target:?}");
        }
    }
}

#[test]
fn any_one_role_granting_is_enough() {
    let caller = roles(&["reader", "admin"]);
    assert!(allows(&caller, HOME, "users:write", Some(OTHER)));
    assert!(allows(&caller, HOME, "graph:write", Some(HOME)));
    assert!(allows(&caller, HOME, "audit:read", None));
    assert!(!allows(&roles(&["reader"]), HOME, "graph:write", Some(HOME)));
}

#[test]
fn no_roles_grant_nothing() {
    assert!(!allows(&[], HOME, "agent", Some(HOME)));
    assert!(!allows(&[], HOME, "keys:self", None));
}

#[test]
fn unknown_role_grants_nothing_and_leaves_a_known_role_intact() {
    assert_eq!(capabilities_of("root").count(), 0);
    assert_eq!(scope_of("root"), None);
    for capability in capabilities_of("admin") {
        for target in [Some(HOME), Some(OTHER), None] {
            assert!(!allows(&roles(&["root"]), HOME, capability, target), "{capability} {target:?}");
        }
    }
    let caller = roles(&["root", "reader"]);
    assert!(allows(&caller, HOME, "graph:read", Some(HOME)));
    assert!(!allows(&caller, HOME, "graph:read", Some(OTHER)));
    assert!(!allows(&caller, HOME, "graph:write", Some(HOME)));
}

#[test]
fn role_names_are_case_sensitive() {
    assert!(!allows(&roles(&["Admin", "READER"]), HOME, "agent", Some(HOME)));
}

#[test]
fn unknown_capability_is_denied_even_for_admin() {
    for capability in ["graph:delete", "", "*", "Graph:read", "users", "iam:admin "] {
        assert!(!is_known_capability(capability), "{capability:?}");
        for target in [Some(HOME), Some(OTHER), None] {
            assert!(!allows(&roles(&KNOWN_ROLES), HOME, capability, target), "{capability:?} {target:?}");
        }
    }
}

#[test]
fn system_capabilities_are_for_admin_only_whatever_the_target() {
    for capability in SYSTEM_CAPABILITIES {
        assert!(is_system_capability(capability));
        assert!(is_known_capability(capability));
        for target in [None, Some(HOME), Some(OTHER)] {
            for role in ["reader", "writer"] {
                assert!(!allows(&roles(&[role]), HOME, capability, target), "{role} {capability} {target:?}");
            }
            assert!(allows(&roles(&["admin"]), HOME, capability, target), "{capability} {target:?}");
        }
    }
    assert!(!is_system_capability("users:admin"));
}

#[test]
fn self_capabilities_need_no_workspace_target() {
    for capability in ["keys:self", "workspaces:list-own"] {
        assert!(!is_system_capability(capability));
        for role in KNOWN_ROLES {
            assert!(allows(&roles(&[role]), HOME, capability, None), "{role} {capability}");
        }
    }
}

#[test]
fn writer_has_every_reader_capability_and_admin_every_writer_capability() {
    for capability in capabilities_of("reader") {
        assert!(capabilities_of("writer").any(|c| c == capability), "writer lacks {capability}");
    }
    for capability in capabilities_of("writer") {
        assert!(capabilities_of("admin").any(|c| c == capability), "admin lacks {capability}");
    }
}

#[test]
fn capability_sets_hold_no_duplicates() {
    for role in KNOWN_ROLES {
        let set: Vec<&str> = capabilities_of(role).collect();
        for (i, capability) in set.iter().enumerate() {
            assert!(!set[i + 1..].contains(capability), "{role} lists {capability} twice");
        }
    }
}

/// The group a capability belongs to in the design, written independently of the module.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Group {
    Read,
    Write,
    Admin,
    System,
}

/// Every known capability and its group.
const EXPECTED_GROUPS: &[(&str, Group)] = &[
    ("agent", Group::Read),
    ("graph:read", Group::Read),
    ("triples:read", Group::Read),
    ("sparql:read", Group::Read),
    ("graph-rag:read", Group::Read),
    ("graph-embeddings:read", Group::Read),
    ("documents:read", Group::Read),
    ("document-rag:read", Group::Read),
    ("document-embeddings:read", Group::Read),
    ("entity-contexts:read", Group::Read),
    ("rows:read", Group::Read),
    ("nlp-query:read", Group::Read),
    ("structured-query:read", Group::Read),
    ("row-embeddings:read", Group::Read),
    ("llm", Group::Read),
    ("embeddings", Group::Read),
    ("reranker", Group::Read),
    ("image-to-text", Group::Read),
    ("cloze", Group::Read),
    ("decision-scoring", Group::Read),
    ("field-extraction", Group::Read),
    ("mcp", Group::Read),
    ("config:read", Group::Read),
    ("flows:read", Group::Read),
    ("collections:read", Group::Read),
    ("knowledge:read", Group::Read),
    ("keys:self", Group::Read),
    ("workspaces:list-own", Group::Read),
    ("graph:write", Group::Write),
    ("triples:write", Group::Write),
    ("graph-embeddings:write", Group::Write),
    ("document-embeddings:write", Group::Write),
    ("entity-contexts:write", Group::Write),
    ("documents:write", Group::Write),
    ("rows:write", Group::Write),
    ("collections:write", Group::Write),
    ("knowledge:write", Group::Write),
    ("config:write", Group::Admin),
    ("flows:write", Group::Admin),
    ("users:read", Group::Admin),
    ("users:write", Group::Admin),
    ("users:admin", Group::Admin),
    ("keys:admin", Group::Admin),
    ("mint-token", Group::Admin),
    ("workspaces:admin", Group::System),
    ("iam:admin", Group::System),
    ("metrics:read", Group::System),
    ("audit:read", Group::System),
];

/// The groups one role may use in its own workspace, in another, and with no target.
type Grants = (&'static str, &'static [Group], &'static [Group], &'static [Group]);

/// The groups each role may use, per target: role, own workspace, other workspace, none.
const EXPECTED_GRANTS: &[Grants] = {
    use Group::*;
    &[
        ("reader", &[Read], &[], &[Read]),
        ("writer", &[Read, Write], &[], &[Read, Write]),
        (
            "admin",
            &[Read, Write, Admin, System],
            &[Read, Write, Admin, System],
            &[Read, Write, Admin, System],
        ),
        ("root", &[], &[], &[]),
    ]
};

#[test]
fn full_matrix_matches_the_design() {
    for role in KNOWN_ROLES {
        for capability in capabilities_of(role) {
            let listed = EXPECTED_GROUPS.iter().any(|(expected, _)| *expected == capability);
            assert!(listed, "{role} grants {capability}, which the design does not list");
        }
    }
    for (role, own, other, nowhere) in EXPECTED_GRANTS {
        for (capability, group) in EXPECTED_GROUPS {
            assert!(is_known_capability(capability), "{capability} is not known");
            assert_eq!(is_system_capability(capability), *group == Group::System, "{capability}");
            for (target, granted) in [(Some(HOME), own), (Some(OTHER), other), (None, nowhere)] {
                assert_eq!(
                    allows(&roles(&[role]), HOME, capability, target),
                    granted.contains(group),
                    "{role} {capability} {target:?}"
                );
            }
        }
    }
}

/// TrustGraph 2.11.1's role table (`trustgraph/iam/service/iam.py`), copied here so that a
/// change on either side shows; the live comparison against upstream's own `_decide` runs in
/// `tests/it/trustgraph.rs` with the published package.
const UPSTREAM_READER: &[&str] = &[
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
    "keys:self",
];
const UPSTREAM_WRITER_ADDS: &[&str] = &[
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
const UPSTREAM_ADMIN_ADDS: &[&str] = &[
    "config:write",
    "flows:write",
    "users:read",
    "users:write",
    "users:admin",
    "keys:admin",
    "workspaces:admin",
    "iam:admin",
    "metrics:read",
    "mint-token",
];

#[test]
fn the_role_table_is_upstreams_exactly() {
    let sorted = |set: Vec<&'static str>| {
        let mut set = set;
        set.sort_unstable();
        set
    };
    let reader = UPSTREAM_READER.to_vec();
    let writer = [UPSTREAM_READER, UPSTREAM_WRITER_ADDS].concat();
    let admin = [UPSTREAM_READER, UPSTREAM_WRITER_ADDS, UPSTREAM_ADMIN_ADDS].concat();
    for (role, expected) in [("reader", reader), ("writer", writer), ("admin", admin)] {
        assert_eq!(sorted(upstream_capabilities_of(role).collect()), sorted(expected), "{role}");
    }
    assert_eq!(upstream_capabilities_of("root").count(), 0);
}
