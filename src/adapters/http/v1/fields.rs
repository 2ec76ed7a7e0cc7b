//! Netsoc's rules for a User body: what a non-admin may send, the fields a sign-up needs, the
//! validators' words, and what a PATCH changes (zero values are no change).

use super::body::{go_time, UserBody};
use super::HttpState;
use crate::protocol::{IamError, UserInput};
use crate::service::netsoc::{self, NetsocUser};
use chrono::{DateTime, Utc};

/// What a non-admin may send (sign-up, or its own account): no `verified`, `is_admin` or
/// `renewed`, an email `accounts.email_pattern` accepts, no reserved username (403).
pub(super) fn non_admin_rules(
    state: &HttpState,
    b: &UserBody,
    renewed: Option<DateTime<Utc>>,
) -> Result<(), IamError> {
    let privileged = b.verified.is_some() || b.is_admin.is_some() || renewed.is_some();
    let username = UserBody::given(&b.username).unwrap_or_default();
    let email = UserBody::given(&b.email).unwrap_or_default();
    state.service.netsoc_non_admin_ok(username, email, privileged)
}

/// The fields a sign-up must give, as Netsoc's validator words their absence.
pub(super) fn blank_fields(b: &UserBody) -> Result<(), String> {
    let blank: Vec<String> = [
        ("email", &b.email),
        ("first_name", &b.first_name),
        ("last_name", &b.last_name),
        ("username", &b.username),
    ]
    .into_iter()
    .filter(|(_, v)| UserBody::given(v).is_none())
    .map(|(name, _)| format!("{name}: cannot be blank"))
    .collect();
    match blank.is_empty() {
        true => Ok(()),
        false => Err(format!("{}.", blank.join("; "))),
    }
}

/// What a User body asks to change of `user`, as an update-user input; zero values are not
/// changes (the Go client sends the whole struct).
pub(super) fn changes(b: &UserBody, user: &NetsocUser, renewed: Option<DateTime<Utc>>) -> Option<UserInput> {
    let mut input = UserInput::default();
    let mut any = false;
    let mut take = |field: &Option<String>, current: &str, into: &mut String| {
        if let Some(value) = UserBody::given(field).filter(|v| *v != current) {
            *into = value.to_owned();
            any = true;
        }
    };
    take(&b.username, &user.username, &mut input.username);
    take(&b.email, &user.email, &mut input.email);
    take(&b.first_name, &user.first_name, &mut input.first_name);
    take(&b.last_name, &user.last_name, &mut input.last_name);
    take(&b.ssh_key, user.ssh_key.as_deref().unwrap_or_default(), &mut input.ssh_key);
    if let Some(verified) = b.verified.filter(|v| *v != user.verified) {
        input.verified = Some(verified);
        any = true;
    }
    if let Some(admin) = b.is_admin.filter(|a| *a != user.is_admin) {
        let mut roles: Vec<String> =
            user.roles.iter().filter(|r| *r != crate::authz::ADMIN_ROLE).cloned().collect();
        if admin {
            roles.push(crate::authz::ADMIN_ROLE.to_owned());
        }
        input.roles = Some(roles);
        any = true;
    }
    if let Some(at) = renewed.filter(|at| *at != user.renewed) {
        input.renewed = go_time(at);
        any = true;
    }
    any.then_some(input)
}

/// Netsoc's field rules for a User body: a valid email and DNS-name username when given,
/// 8–128 characters of password (400 with its validator's words).
pub(super) fn field_rules(b: &UserBody) -> Result<(), String> {
    let mut problems = Vec::new();
    if UserBody::given(&b.email).is_some_and(|e| !valid_email(e)) {
        problems.push("email: must be a valid email address");
    }
    if UserBody::given(&b.username).is_some_and(|u| !dns_name(u)) {
        problems.push("username: must be a valid DNS name");
    }
    if UserBody::given(&b.password).is_some_and(|p| netsoc::password_length(p).is_err()) {
        problems.push("password: the length must be between 8 and 128");
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(format!("{}.", problems.join("; "))),
    }
}

/// ozzo-validation's `is.DNSName`.
fn dns_name(name: &str) -> bool {
    static PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^([a-zA-Z0-9_][a-zA-Z0-9_-]{0,62})(\.[a-zA-Z0-9_][a-zA-Z0-9_-]{0,62})*[\._]?$")
            .expect("a valid pattern")
    });
    name.len() <= 253 && PATTERN.is_match(name)
}

fn valid_email(email: &str) -> bool {
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !email.chars().any(char::is_whitespace)
                && dns_name(domain)
        }
        None => false,
    }
}
