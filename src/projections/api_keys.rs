//! The `api_keys` read table. A revoked key's row is deleted: resolve finds nothing.

use super::{Context, Statement};
use crate::crypto::ApiKeyHash;
use crate::events::Event;

pub fn reduce(ctx: &Context<'_>, event: &Event) -> Vec<Statement> {
    match event {
        Event::ApiKeyCreated { key_id, user_id, name, prefix, key_hash, expires, created } => {
            let hash = ApiKeyHash::from_tagged(key_hash).map(|h| h.0.to_vec()).unwrap_or_default();
            vec![Statement::new(
                "INSERT INTO api_keys (key_hash, id, user_id, workspace, name, prefix, expires, created) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                vec![
                    Box::new(hash),
                    Box::new(key_id.clone()),
                    Box::new(user_id.clone()),
                    Box::new(ctx.workspace().to_owned()),
                    Box::new(name.clone()),
                    Box::new(prefix.clone()),
                    Box::new(*expires),
                    Box::new(*created),
                ],
            )]
        }
        Event::ApiKeyRevoked { key_id, .. } => {
            vec![Statement::new("DELETE FROM api_keys WHERE id = $1", vec![Box::new(key_id.clone())])]
        }
        _ => vec![],
    }
}
