//! Username reservations (`unique_usernames`): unique across all workspaces, case-insensitive.
//! A collision fails the whole append with 23505, which the store turns into `duplicate`.

use super::{Context, Statement};
use crate::events::Event;

pub fn reduce(_ctx: &Context<'_>, event: &Event) -> Vec<Statement> {
    match event {
        Event::UserCreated { user_id, username, .. } => vec![reserve(user_id, username)],
        Event::UserChanged { user_id, username: Some(username), .. } => {
            vec![release(user_id), reserve(user_id, username)]
        }
        Event::UserDeleted { user_id, .. } => vec![release(user_id)],
        _ => vec![],
    }
}

fn reserve(user_id: &str, username: &str) -> Statement {
    Statement::new(
        "INSERT INTO unique_usernames (username_lower, user_id) VALUES (lower($1), $2)",
        vec![Box::new(username.to_owned()), Box::new(user_id.to_owned())],
    )
}

fn release(user_id: &str) -> Statement {
    Statement::new("DELETE FROM unique_usernames WHERE user_id = $1", vec![Box::new(user_id.to_owned())])
}
