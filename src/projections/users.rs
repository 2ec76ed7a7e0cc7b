//! The `users` read table.

use super::write::{Shape, Value::*, Write};
use super::Context;
use crate::events::Event;

static CREATE: Shape = Shape::insert(
    "users",
    &[
        ("id", Param),
        ("workspace", Param),
        ("username", Param),
        ("name", Param),
        ("email", Param),
        ("roles", Param),
        ("enabled", Param),
        ("must_change_password", Param),
        ("password_hash", Param),
        ("account_version", Literal("1")),
        ("created", Param),
        ("self_registered", Param),
        ("number", Param),
        ("updated", Param),
    ],
);
/// Every change of a user stamps `updated` (Netsoc's `meta.updated`) with its event's time.
static TOUCH: Shape = Shape::update("users", "id", &[("updated", Param)]);
static NUMBERED: Shape = Shape::update("users", "id", &[("number", Param)]);
/// An imported user keeps its account version and its times.
static IMPORTED: Shape =
    Shape::update("users", "id", &[("account_version", Param), ("created", Param), ("updated", Param)]);
/// The same password under a newer scheme: no session ends.
static REHASHED: Shape = Shape::update("users", "id", &[("password_hash", Param)]);
static CHANGE: Shape = Shape::update(
    "users",
    "id",
    &[
        ("username", ParamOrKeep),
        ("name", ParamOrKeep),
        ("email", ParamOrKeep),
        ("roles", ParamOrKeep),
        ("must_change_password", ParamOrKeep),
    ],
);
/// Disabling a user ends its sessions: the account version moves on.
static DISABLE: Shape =
    Shape::update("users", "id", &[("enabled", Literal("false")), ("account_version", Increment)]);
static ENABLE: Shape = Shape::update("users", "id", &[("enabled", Literal("true"))]);
static DELETE: Shape = Shape::delete("users", "id");
/// A new password ends every session; a reset one must be changed at the next login.
static PASSWORD_CHANGED: Shape = Shape::update(
    "users",
    "id",
    &[("password_hash", Param), ("must_change_password", Literal("false")), ("account_version", Increment)],
);
static PROFILE: Shape = Shape::update(
    "users",
    "id",
    &[
        ("first_name", ParamOrKeep),
        ("last_name", ParamOrKeep),
        ("ssh_key", ParamOrKeep),
        ("verified", ParamOrKeep),
        ("renewed", ParamOrKeep),
    ],
);
/// logout-all, a changed email or admin role: every token issued before dies.
static SESSIONS_ENDED: Shape = Shape::update("users", "id", &[("account_version", Increment)]);
static PASSWORD_RESET: Shape = Shape::update(
    "users",
    "id",
    &[("password_hash", Param), ("must_change_password", Literal("true")), ("account_version", Increment)],
);

pub fn reduce(ctx: &Context<'_>, event: &Event) -> Vec<Write> {
    let mut writes = changes(ctx, event);
    let touched = match event {
        Event::UserChanged { user_id, .. }
        | Event::UserDisabled { user_id }
        | Event::UserEnabled { user_id }
        | Event::UserPasswordChanged { user_id, .. }
        | Event::UserPasswordReset { user_id, .. }
        | Event::UserProfileChanged { user_id, .. }
        | Event::UserSessionsEnded { user_id, .. } => Some(user_id),
        _ => None,
    };
    if let Some(user_id) = touched {
        writes.push(Write::new(&TOUCH, vec![Box::new(user_id.clone()), Box::new(ctx.recorded_at)]));
    }
    writes
}

fn changes(ctx: &Context<'_>, event: &Event) -> Vec<Write> {
    match event {
        Event::UserCreated {
            user_id,
            username,
            name,
            email,
            roles,
            enabled,
            must_change_password,
            password_hash,
            created,
            self_registered,
            number,
        } => vec![Write::new(
            &CREATE,
            vec![
                Box::new(user_id.clone()),
                Box::new(ctx.workspace().to_owned()),
                Box::new(username.clone()),
                Box::new(name.clone()),
                Box::new(email.clone()),
                Box::new(roles.clone()),
                Box::new(*enabled),
                Box::new(*must_change_password),
                Box::new(password_hash.clone()),
                Box::new(*created),
                Box::new(*self_registered),
                Box::new(*number),
                Box::new(*created),
            ],
        )],
        Event::UserNumbered { user_id, number } => {
            vec![Write::new(&NUMBERED, vec![Box::new(user_id.clone()), Box::new(*number)])]
        }
        Event::UserImported { user_id, account_version, created, updated, .. } => vec![Write::new(
            &IMPORTED,
            vec![
                Box::new(user_id.clone()),
                Box::new(*account_version),
                Box::new(*created),
                Box::new(*updated),
            ],
        )],
        Event::UserPasswordRehashed { user_id, password_hash } => {
            vec![Write::new(&REHASHED, vec![Box::new(user_id.clone()), Box::new(password_hash.clone())])]
        }
        Event::UserChanged { user_id, username, name, email, roles, must_change_password } => {
            vec![Write::new(
                &CHANGE,
                vec![
                    Box::new(user_id.clone()),
                    Box::new(username.clone()),
                    Box::new(name.clone()),
                    Box::new(email.clone()),
                    Box::new(roles.clone()),
                    Box::new(*must_change_password),
                ],
            )]
        }
        Event::UserDisabled { user_id } => vec![Write::new(&DISABLE, vec![Box::new(user_id.clone())])],
        Event::UserEnabled { user_id } => vec![Write::new(&ENABLE, vec![Box::new(user_id.clone())])],
        Event::UserDeleted { user_id, .. } => vec![Write::new(&DELETE, vec![Box::new(user_id.clone())])],
        Event::UserPasswordChanged { user_id, password_hash } => vec![Write::new(
            &PASSWORD_CHANGED,
            vec![Box::new(user_id.clone()), Box::new(password_hash.clone())],
        )],
        Event::UserPasswordReset { user_id, password_hash } => vec![Write::new(
            &PASSWORD_RESET,
            vec![Box::new(user_id.clone()), Box::new(password_hash.clone())],
        )],
        Event::UserProfileChanged { user_id, first_name, last_name, ssh_key, verified, renewed } => {
            vec![Write::new(
                &PROFILE,
                vec![
                    Box::new(user_id.clone()),
                    Box::new(first_name.clone()),
                    Box::new(last_name.clone()),
                    Box::new(ssh_key.clone()),
                    Box::new(*verified),
                    Box::new(*renewed),
                ],
            )]
        }
        Event::UserSessionsEnded { user_id, .. } => {
            vec![Write::new(&SESSIONS_ENDED, vec![Box::new(user_id.clone())])]
        }
        _ => vec![],
    }
}
