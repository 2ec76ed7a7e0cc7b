//! Retirement stamps on `signing_keys`. (The row itself, with the private key, is inserted by
//! the store from the command's side data: the private key never enters an event.) A retired
//! key only verifies tokens until its `valid_until`: its private half is erased as it retires.

use super::{Context, Statement};
use crate::events::Event;

pub fn reduce(_ctx: &Context<'_>, event: &Event) -> Vec<Statement> {
    match event {
        Event::SigningKeyRetired { kid, retired, valid_until } => vec![Statement::new(
            "UPDATE signing_keys SET retired = $2, valid_until = $3, private_key = NULL, kek = NULL \
             WHERE kid = $1",
            vec![Box::new(kid.clone()), Box::new(*retired), Box::new(*valid_until)],
        )],
        _ => vec![],
    }
}
