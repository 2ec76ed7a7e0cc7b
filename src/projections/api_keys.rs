//! The `api_keys` read table. A revoked key's row is deleted: resolve finds nothing.

use super::write::{Shape, Value::*, Write};
use super::Context;
use crate::crypto::ApiKeyHash;
use crate::events::Event;

static CREATE: Shape = Shape::insert(
    "api_keys",
    &[
        ("key_hash", Param),
        ("id", Param),
        ("user_id", Param),
        ("workspace", Param),
        ("name", Param),
        ("prefix", Param),
        ("expires", Param),
        ("created", Param),
    ],
);
static REVOKE: Shape = Shape::delete("api_keys", "id");

pub fn reduce(ctx: &Context<'_>, event: &Event) -> Vec<Write> {
    match event {
        Event::ApiKeyCreated { key_id, user_id, name, prefix, key_hash, expires, created } => {
            let hash = ApiKeyHash::from_tagged(key_hash).map(|h| h.0.to_vec()).unwrap_or_default();
            vec![Write::new(
                &CREATE,
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
        Event::ApiKeyRevoked { key_id, .. } => vec![Write::new(&REVOKE, vec![Box::new(key_id.clone())])],
        _ => vec![],
    }
}
