//! Retirement stamps on `signing_keys`. (The row itself, with the private key, is inserted by
//! the store from the command's side data: the private key never enters an event.) A retired
//! key only verifies tokens until its `valid_until`: its private half is erased as it retires.

use super::write::{Shape, Value::*, Write};
use super::Context;
use crate::events::Event;

static RETIRE: Shape = Shape::update(
    "signing_keys",
    "kid",
    &[("retired", Param), ("valid_until", Param), ("private_key", Literal("NULL")), ("kek", Literal("NULL"))],
);

pub fn reduce(_ctx: &Context<'_>, event: &Event) -> Vec<Write> {
    match event {
        Event::SigningKeyRetired { kid, retired, valid_until } => {
            vec![Write::new(&RETIRE, vec![Box::new(kid.clone()), Box::new(*retired), Box::new(*valid_until)])]
        }
        _ => vec![],
    }
}
