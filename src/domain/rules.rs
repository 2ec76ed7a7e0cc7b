//! Input rules shared by the aggregates: identifiers, lengths, roles.

use crate::protocol::IamError;

/// The roles iamd knows (the one list, [`crate::authz::KNOWN_ROLES`]). Anything else is refused
/// on input and grants nothing.
pub use crate::authz::KNOWN_ROLES as ROLES;

pub const MAX_NAME: usize = 200;
pub const MAX_EMAIL: usize = 254;
pub const MAX_USERNAME: usize = 64;
pub const MAX_WORKSPACE_ID: usize = 64;
pub const MAX_KEY_NAME: usize = 100;

/// Workspace ids: 1–64 of `[A-Za-z0-9._-]`, starting with a letter or digit.
pub fn workspace_id(id: &str) -> Result<(), IamError> {
    if id.is_empty() {
        return Err(IamError::invalid("workspace id is required"));
    }
    if id.len() > MAX_WORKSPACE_ID {
        return Err(IamError::invalid(format!("workspace id is longer than {MAX_WORKSPACE_ID} characters")));
    }
    let first_ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || !id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        return Err(IamError::invalid(
            "workspace id must be letters, digits, '.', '_' or '-', starting with a letter or digit",
        ));
    }
    Ok(())
}

/// Usernames: 1–64 of letters, digits and `._-@+`, a PRECIS username of one script
/// ([`super::username::key`]).
pub fn username(name: &str) -> Result<(), IamError> {
    if name.is_empty() {
        return Err(IamError::invalid("username is required"));
    }
    if name.chars().count() > MAX_USERNAME {
        return Err(IamError::invalid(format!("username is longer than {MAX_USERNAME} characters")));
    }
    if !name.chars().all(|c| c.is_alphanumeric() || "._-@+".contains(c)) {
        return Err(IamError::invalid("username may hold only letters, digits and . _ - @ +"));
    }
    super::username::key(name).map_err(IamError::invalid)?;
    Ok(())
}

/// A new user's fields, checked once with the wire's names (`user.name`): by the service
/// before it spends a password hash, and by `decide`. Returns the roles deduplicated.
pub fn new_user(username: &str, name: &str, email: &str, roles: &[String]) -> Result<Vec<String>, IamError> {
    self::username(username)?;
    max_len("user.name", name, MAX_NAME)?;
    self::email(email)?;
    self::roles(roles)
}

/// A workspace's name.
pub fn workspace_name(name: &str) -> Result<(), IamError> {
    max_len("workspace_record.name", name, MAX_NAME)
}

pub fn max_len(field: &str, value: &str, max: usize) -> Result<(), IamError> {
    if value.chars().count() > max {
        return Err(IamError::invalid(format!("{field} is longer than {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(IamError::invalid(format!("{field} contains control characters")));
    }
    Ok(())
}

pub fn email(value: &str) -> Result<(), IamError> {
    max_len("email", value, MAX_EMAIL)?;
    if !value.is_empty() && (!value.contains('@') || value.contains(char::is_whitespace)) {
        return Err(IamError::invalid("email is not an address"));
    }
    Ok(())
}

/// Roles must be a subset of [`ROLES`]; returns them deduplicated in their given order.
pub fn roles(roles: &[String]) -> Result<Vec<String>, IamError> {
    let mut out: Vec<String> = Vec::with_capacity(roles.len());
    for r in roles {
        if !ROLES.contains(&r.as_str()) {
            let shown: String = r.chars().take(32).filter(|c| !c.is_control()).collect();
            return Err(IamError::invalid(format!(
                "unknown role '{shown}' (known roles: reader, writer, admin)"
            )));
        }
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_ids() {
        assert!(workspace_id("acme-1.prod_x").is_ok());
        assert!(workspace_id("").is_err());
        assert!(workspace_id("_system").is_err());
        assert!(workspace_id("a b").is_err());
        assert!(workspace_id(&"a".repeat(65)).is_err());
    }

    #[test]
    fn roles_are_a_subset_and_deduplicated() {
        let r = roles(&["writer".into(), "writer".into(), "admin".into()]).unwrap();
        assert_eq!(r, vec!["writer", "admin"]);
        assert!(roles(&["root".into()]).is_err());
    }

    #[test]
    fn usernames_and_emails() {
        assert!(username("alice.b@example").is_ok());
        assert!(username("").is_err());
        assert!(username("a/b").is_err());
        assert!(username("\u{0430}dmin2").is_err(), "mixed scripts");
        assert!(username("ＡＤＭＩＮ２").is_ok(), "taken as admin2");
        assert!(email("").is_ok());
        assert!(email("a@b").is_ok());
        assert!(email("nope").is_err());
        assert!(max_len("name", "a\u{0}b", 10).is_err());
    }
}
