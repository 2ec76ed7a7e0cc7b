//! The `workspaces` read table.

use super::{Context, Statement};
use crate::events::Event;

pub fn reduce(ctx: &Context<'_>, event: &Event) -> Vec<Statement> {
    let ws = ctx.workspace().to_owned();
    match event {
        Event::WorkspaceCreated { workspace_id, name, created } => vec![Statement::new(
            "INSERT INTO workspaces (id, name, enabled, created) VALUES ($1, $2, true, $3)",
            vec![Box::new(workspace_id.clone()), Box::new(name.clone()), Box::new(*created)],
        )],
        Event::WorkspaceRenamed { name } => vec![Statement::new(
            "UPDATE workspaces SET name = $2 WHERE id = $1",
            vec![Box::new(ws), Box::new(name.clone())],
        )],
        Event::WorkspaceDisabled {} => {
            vec![Statement::new("UPDATE workspaces SET enabled = false WHERE id = $1", vec![Box::new(ws)])]
        }
        Event::WorkspaceEnabled {} => {
            vec![Statement::new("UPDATE workspaces SET enabled = true WHERE id = $1", vec![Box::new(ws)])]
        }
        _ => vec![],
    }
}
