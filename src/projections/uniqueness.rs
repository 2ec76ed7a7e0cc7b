//! Username reservations (`unique_usernames`): unique across all workspaces by the name's
//! comparison key ([`crate::domain::username`]), computed here from the event's display form.
//! A collision fails the whole append with 23505, which the store turns into `duplicate`.

use super::write::{Shape, Value::Param, Write};
use super::Context;
use crate::domain::username::lookup_key;
use crate::events::Event;
use std::collections::{BTreeMap, HashSet};

static RESERVE: Shape = Shape::insert("unique_usernames", &[("username_key", Param), ("user_id", Param)]);
static RELEASE: Shape = Shape::delete("unique_usernames", "user_id");

pub fn reduce(_ctx: &Context<'_>, event: &Event) -> Vec<Write> {
    match event {
        Event::UserCreated { user_id, username, .. } => vec![reserve(user_id, username)],
        Event::UserChanged { user_id, username: Some(username), .. } => {
            vec![release(user_id), reserve(user_id, username)]
        }
        Event::UserDeleted { user_id, .. } => vec![release(user_id)],
        _ => vec![],
    }
}

fn reserve(user_id: &str, username: &str) -> Write {
    Write::new(&RESERVE, vec![Box::new(lookup_key(username)), Box::new(user_id.to_owned())])
}

fn release(user_id: &str) -> Write {
    Write::new(&RELEASE, vec![Box::new(user_id.to_owned())])
}

/// Users whose names compare equal under the comparison key but were taken under `lower()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub key: String,
    /// The user that keeps the key: the first created.
    pub kept: String,
    /// The others: they keep their old reservation until one of them is renamed.
    pub others: Vec<String>,
}

/// Migration 12: every reservation re-keyed from its user's display name. Where names now
/// collide, the first user created takes the key and the others keep their old reservation
/// (reported, not merged). In the migration's transaction.
pub async fn rekey(tx: &tokio_postgres::Transaction<'_>) -> Result<Vec<Collision>, tokio_postgres::Error> {
    let rows = tx
        .query(
            "SELECT r.user_id, r.username_key, u.username FROM unique_usernames r \
             JOIN users u ON u.id = r.user_id ORDER BY u.created, u.id",
            &[],
        )
        .await?;
    let mut by_key: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for row in &rows {
        let (user_id, old, username): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        by_key.entry(lookup_key(&username)).or_default().push((user_id, old));
    }
    let mut reservations: Vec<(String, String)> = Vec::with_capacity(rows.len());
    let mut collisions = Vec::new();
    let mut leftover = Vec::new();
    for (key, users) in by_key {
        let mut users = users.into_iter();
        let (kept, _) = users.next().expect("a key has a user");
        let others: Vec<(String, String)> = users.collect();
        if !others.is_empty() {
            collisions.push(Collision {
                key: key.clone(),
                kept: kept.clone(),
                others: others.iter().map(|(id, _)| id.clone()).collect(),
            });
            leftover.extend(others);
        }
        reservations.push((key, kept));
    }
    let taken: HashSet<String> = reservations.iter().map(|(k, _)| k.clone()).collect();
    for (user_id, old) in leftover {
        // The old key, unless a new one is now the same text.
        let key = if taken.contains(&old) { format!("{old} (colliding user {user_id})") } else { old };
        reservations.push((key, user_id));
    }
    let (keys, users): (Vec<String>, Vec<String>) = reservations.into_iter().unzip();
    tx.execute("DELETE FROM unique_usernames", &[]).await?;
    tx.execute(
        "INSERT INTO unique_usernames (username_key, user_id) SELECT * FROM UNNEST($1::text[], $2::text[])",
        &[&keys, &users],
    )
    .await?;
    Ok(collisions)
}
