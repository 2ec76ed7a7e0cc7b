//! Netsoc's account fields of a user, as a create or an update edits them.

use crate::domain::rules;
use crate::events::Event;
use crate::protocol::IamError;
use chrono::{DateTime, Utc};

/// Netsoc's account fields a create or an update sets; `None` leaves one as it is (on
/// create: empty, unverified, never renewed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileEdit {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// An OpenSSH public key line; `Some("")` removes the key.
    pub ssh_key: Option<String>,
    pub verified: Option<bool>,
    pub renewed: Option<DateTime<Utc>>,
}

impl ProfileEdit {
    /// The event for what this edit changes in `current`, or `None` when it changes nothing;
    /// refused when a value breaks its rule.
    pub(super) fn event(&self, user_id: &str, current: &super::Profile) -> Result<Option<Event>, IamError> {
        let changed = |new: &Option<String>, old: &str| new.as_ref().filter(|v| v.as_str() != old).cloned();
        let first_name = changed(&self.first_name, &current.first_name);
        let last_name = changed(&self.last_name, &current.last_name);
        for (field, v) in [("user.first_name", &first_name), ("user.last_name", &last_name)] {
            if let Some(v) = v {
                rules::max_len(field, v, rules::MAX_NAME)?;
            }
        }
        let ssh_key = match &self.ssh_key {
            Some(v) => Some(rules::ssh_key(v)?).filter(|v| *v != current.ssh_key),
            None => None,
        };
        let verified = self.verified.filter(|v| *v != current.verified);
        let renewed = self.renewed.filter(|v| Some(*v) != current.renewed);
        if first_name.is_none()
            && last_name.is_none()
            && ssh_key.is_none()
            && verified.is_none()
            && renewed.is_none()
        {
            return Ok(None);
        }
        Ok(Some(Event::UserProfileChanged {
            user_id: user_id.to_owned(),
            first_name,
            last_name,
            ssh_key,
            verified,
            renewed,
        }))
    }
}
