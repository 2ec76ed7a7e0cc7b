//! How usernames compare. A username is kept as its user typed it (its display form) and is
//! compared by its key: the PRECIS UsernameCaseMapped profile of RFC 8265 (width mapping —
//! `ａｄｍｉｎ` is `admin` —, the IdentifierClass code points, case mapping, NFC, the bidi rule)
//! followed by Unicode full case folding, so `straße` and `STRASSE` are one name. A name that
//! mixes scripts (Unicode TR39: `аdmin`, a Cyrillic `а` before Latin letters) is refused.
//! The key is what `unique_usernames` reserves and what login looks up.

use precis_core::profile::Profile;
use precis_profiles::UsernameCaseMapped;
use unicode_normalization::UnicodeNormalization;
use unicode_security::MixedScript;

/// The comparison key of a name a user may take, or why it may not.
pub fn key(name: &str) -> Result<String, &'static str> {
    let enforced = UsernameCaseMapped::new()
        .enforce(name)
        .map_err(|_| "username holds characters a username may not (RFC 8265 PRECIS IdentifierClass)")?;
    if !enforced.is_single_script() {
        return Err("username mixes scripts (e.g. a Cyrillic letter among Latin ones)");
    }
    Ok(fold(&enforced))
}

/// The key of any name, also one [`key`] refuses (names taken before these rules, a login's
/// typo): its key when it has one, else its case fold. What the reservations of the log's
/// usernames and the digests of unknown names use, so neither ever fails.
pub fn lookup_key(name: &str) -> String {
    if name.is_ascii() {
        // What the profile and the fold come to for ASCII, without their tables.
        return name.to_ascii_lowercase();
    }
    key(name).unwrap_or_else(|_| fold(name))
}

/// Whether two names compare equal (the same [`lookup_key`]).
pub fn same(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    lookup_key(a) == lookup_key(b)
}

fn fold(s: &str) -> String {
    caseless::default_case_fold_str(s).nfc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_share_a_key() {
        assert_eq!(key("admin2").unwrap(), "admin2");
        assert_eq!(key("ＡＤＭＩＮ２").unwrap(), "admin2", "fullwidth");
        assert_eq!(key("ａｄｍｉｎ２").unwrap(), "admin2", "fullwidth");
        assert_eq!(key("Admin2").unwrap(), "admin2");
        assert_eq!(key("straße").unwrap(), key("STRASSE").unwrap());
        assert_eq!(key("Ste\u{0301}phane").unwrap(), key("St\u{00e9}phane").unwrap(), "NFC");
        assert_eq!(key("alice.b@example").unwrap(), "alice.b@example");
    }

    #[test]
    fn mixed_scripts_and_disallowed_code_points_are_refused() {
        assert!(key("\u{0430}dmin2").is_err(), "Cyrillic а among Latin letters");
        assert!(key("раураl").is_err(), "Cyrillic р, а, у among Latin");
        assert!(key("админ").is_ok(), "one script, Cyrillic");
        assert!(key("用户1").is_ok(), "Han and digits");
        assert!(key("a b").is_err(), "a space");
        assert!(key("").is_err());
        assert!(key("a\u{200b}b").is_err(), "a zero-width space");
    }

    #[test]
    fn every_name_has_a_lookup_key() {
        assert_eq!(lookup_key("ＡＤＭＩＮ２"), "admin2");
        assert_eq!(lookup_key("\u{0430}dmin2"), "\u{0430}dmin2", "refused names keep their fold");
        assert_eq!(lookup_key("Correct Horse"), "correct horse");
        for ascii in ["Admin.B@Example", "x+y_z-1", "tab\tname", "~!#$%"] {
            assert_eq!(lookup_key(ascii), key(ascii).unwrap_or_else(|_| fold(ascii)), "{ascii:?}");
        }
        assert!(same("STRASSE", "straße") && same("Admin", "admin") && !same("admin", "\u{0430}dmin"));
    }
}
