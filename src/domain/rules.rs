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

/// The longest OpenSSH public key line accepted (an RSA 16384-bit key is ~2.8 KB).
pub const MAX_SSH_KEY: usize = 8 * 1024;

/// The key types of an OpenSSH public key line iamd accepts.
const SSH_KEY_TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// An OpenSSH public key line, `<type> <base64 blob> [comment]`, whose blob decodes and names
/// the same type; empty means none. Returns it trimmed.
pub fn ssh_key(value: &str) -> Result<String, IamError> {
    use base64::Engine;
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    let invalid =
        || IamError::invalid("ssh_key is not an OpenSSH public key (e.g. ssh-ed25519 AAAA… comment)");
    if value.len() > MAX_SSH_KEY || value.contains(|c: char| c.is_control()) {
        return Err(invalid());
    }
    let mut parts = value.split_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else { return Err(invalid()) };
    if !SSH_KEY_TYPES.contains(&kind) {
        return Err(invalid());
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(blob).map_err(|_| invalid())?;
    // The blob starts with the key type as an SSH string: a 4-byte big-endian length.
    let named = decoded
        .get(..4)
        .map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize)
        .and_then(|n| decoded.get(4..4 + n));
    if named != Some(kind.as_bytes()) || decoded.len() <= 4 + kind.len() {
        return Err(invalid());
    }
    Ok(value.to_owned())
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
