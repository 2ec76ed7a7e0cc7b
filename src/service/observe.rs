//! What operators and auditors read, each behind a system-wide capability checked here for
//! every transport ([`Service::permits_system`]): the metrics (`metrics:read`), the
//! authentication audit and the log itself (`audit:read`).

use super::{Caller, Refusal, Service};
use crate::authn_audit::{self, Entry, Filter};
use crate::authz;
use crate::protocol::IamError;
use crate::store::tail::{self, TailedEvent};
use std::time::{Duration, Instant};

/// How often a caught-up feed reader looks for new events.
pub const POLL_EVERY: Duration = Duration::from_millis(75);

/// Why a read was not answered.
#[derive(Debug)]
pub enum ReadFailure {
    /// The caller may not read it.
    Refused(Refusal),
    /// The request names something that is not there (a feed position).
    Invalid(IamError),
    /// The database did not answer.
    Unavailable(IamError),
}

impl Service {
    /// Lets `caller` through to a system-wide read that needs `capability`: a user whose
    /// roles grant it. The gateway reads nothing but replies.
    pub fn permits_system(caller: &Caller, capability: &str) -> Result<(), Refusal> {
        match caller {
            Caller::User(p) if p.holds_system(capability) => Ok(()),
            Caller::User(_) | Caller::Gateway => Err(Refusal::Forbidden),
            Caller::Anonymous => Err(Refusal::Unauthenticated),
        }
    }

    /// The Prometheus text of `GET /metrics`, with the population read now.
    pub async fn metrics_text(&self, caller: &Caller) -> Result<String, ReadFailure> {
        Self::permits_system(caller, authz::METRICS_READ).map_err(ReadFailure::Refused)?;
        let population = self.queries().population().await.map_err(ReadFailure::Unavailable)?;
        Ok(self.metrics().render(population, self.registry().active()))
    }

    /// A page of the authentication audit: records after id `after`, at most `limit`.
    pub async fn authentication_records(
        &self,
        caller: &Caller,
        filter: &Filter,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Entry>, ReadFailure> {
        Self::permits_system(caller, authz::AUDIT_READ).map_err(ReadFailure::Refused)?;
        authn_audit::list(self.inner.store.pool(), filter, after, limit).await.map_err(|e| {
            tracing::error!(error = %format!("{e:#}"), "authentication audit: read failed");
            ReadFailure::Unavailable(IamError::internal())
        })
    }

    /// The log's events after position `after` in commit order, gaplessly
    /// ([`crate::store::tail`]), at most `limit`: at once if there are any, else the first to
    /// arrive within `wait`, else none. A connection is taken per look and returned before
    /// sleeping.
    pub async fn log_after(
        &self,
        caller: &Caller,
        after: i64,
        limit: i64,
        wait: Duration,
    ) -> Result<Vec<TailedEvent>, ReadFailure> {
        Self::permits_system(caller, authz::AUDIT_READ).map_err(ReadFailure::Refused)?;
        let unavailable = |e: tokio_postgres::Error| {
            tracing::error!(error = %crate::db::error_line(&e), "audit feed: read failed");
            ReadFailure::Unavailable(IamError::internal())
        };
        let deadline = Instant::now() + wait;
        let mut cursor = None;
        loop {
            let client = self.inner.store.pool().get().await.map_err(|e| {
                tracing::error!(error = %e, "audit feed: no database connection");
                ReadFailure::Unavailable(IamError::internal())
            })?;
            let at = match cursor {
                Some(at) => at,
                None => {
                    let at =
                        tail::cursor_at(&client, after).await.map_err(unavailable)?.ok_or_else(|| {
                            ReadFailure::Invalid(IamError::invalid(format!(
                                "after: no event has position {after}"
                            )))
                        })?;
                    *cursor.insert(at)
                }
            };
            let events = tail::read_after(&client, at, limit).await.map_err(unavailable)?;
            drop(client);
            let now = Instant::now();
            if !events.is_empty() || now >= deadline {
                return Ok(events);
            }
            tokio::time::sleep(POLL_EVERY.min(deadline - now)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Credential, Principal};

    #[test]
    fn system_reads_are_for_users_holding_the_capability() {
        let user = |roles: &[&str]| {
            Caller::User(Principal {
                user_id: "u".into(),
                workspace: "acme".into(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                credential: Credential::ApiKey { key_id: "k".into() },
                password_change_required: false,
                lapsed: false,
            })
        };
        assert_eq!(Service::permits_system(&user(&["admin"]), authz::AUDIT_READ), Ok(()));
        assert_eq!(Service::permits_system(&user(&["writer"]), authz::AUDIT_READ), Err(Refusal::Forbidden));
        assert_eq!(Service::permits_system(&Caller::Gateway, authz::METRICS_READ), Err(Refusal::Forbidden));
        assert_eq!(
            Service::permits_system(&Caller::Anonymous, authz::METRICS_READ),
            Err(Refusal::Unauthenticated)
        );
    }
}
