//! The `workspaces` read table.

use super::write::{Shape, Value::*, Write};
use super::Context;
use crate::events::Event;

static CREATE: Shape = Shape::insert(
    "workspaces",
    &[("id", Param), ("name", Param), ("enabled", Literal("true")), ("created", Param)],
);
static RENAME: Shape = Shape::update("workspaces", "id", &[("name", Param)]);
static DISABLE: Shape = Shape::update("workspaces", "id", &[("enabled", Literal("false"))]);
static ENABLE: Shape = Shape::update("workspaces", "id", &[("enabled", Literal("true"))]);

pub fn reduce(ctx: &Context<'_>, event: &Event) -> Vec<Write> {
    let ws = ctx.workspace().to_owned();
    match event {
        Event::WorkspaceCreated { workspace_id, name, created } => vec![Write::new(
            &CREATE,
            vec![Box::new(workspace_id.clone()), Box::new(name.clone()), Box::new(*created)],
        )],
        Event::WorkspaceRenamed { name } => {
            vec![Write::new(&RENAME, vec![Box::new(ws), Box::new(name.clone())])]
        }
        Event::WorkspaceDisabled {} => vec![Write::new(&DISABLE, vec![Box::new(ws)])],
        Event::WorkspaceEnabled {} => vec![Write::new(&ENABLE, vec![Box::new(ws)])],
        _ => vec![],
    }
}
