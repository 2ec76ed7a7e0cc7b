//! The `users` read table.

use super::{Context, Statement};
use crate::events::Event;

pub fn reduce(ctx: &Context<'_>, event: &Event) -> Vec<Statement> {
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
        } => vec![Statement::new(
            "INSERT INTO users (id, workspace, username, name, email, roles, enabled, \
             must_change_password, password_hash, account_version, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10)",
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
            ],
        )],
        Event::UserChanged { user_id, username, name, email, roles, must_change_password } => {
            vec![Statement::new(
                "UPDATE users SET username = COALESCE($2, username), name = COALESCE($3, name), \
                 email = COALESCE($4, email), roles = COALESCE($5, roles), \
                 must_change_password = COALESCE($6, must_change_password) WHERE id = $1",
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
        Event::UserDisabled { user_id } => vec![Statement::new(
            "UPDATE users SET enabled = false, account_version = account_version + 1 WHERE id = $1",
            vec![Box::new(user_id.clone())],
        )],
        Event::UserEnabled { user_id } => vec![Statement::new(
            "UPDATE users SET enabled = true WHERE id = $1",
            vec![Box::new(user_id.clone())],
        )],
        Event::UserDeleted { user_id, .. } => {
            vec![Statement::new("DELETE FROM users WHERE id = $1", vec![Box::new(user_id.clone())])]
        }
        Event::UserPasswordChanged { user_id, password_hash } => vec![Statement::new(
            "UPDATE users SET password_hash = $2, must_change_password = false, \
             account_version = account_version + 1 WHERE id = $1",
            vec![Box::new(user_id.clone()), Box::new(password_hash.clone())],
        )],
        Event::UserPasswordReset { user_id, password_hash } => vec![Statement::new(
            "UPDATE users SET password_hash = $2, must_change_password = true, \
             account_version = account_version + 1 WHERE id = $1",
            vec![Box::new(user_id.clone()), Box::new(password_hash.clone())],
        )],
        _ => vec![],
    }
}
