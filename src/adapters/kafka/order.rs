//! Per-workspace order among concurrent requests. Requests of different workspaces run at
//! once; within one workspace (the message key) a request starts only after every earlier
//! *command* of that key finished, so commands take effect in partition order and a query sees
//! the commands sent before it. Queries never hold anything up.

use std::collections::HashMap;
use tokio::sync::watch;

/// Closes (its sender is dropped) when the command finished.
type Finished = watch::Receiver<()>;

fn finished(f: &Finished) -> bool {
    f.has_changed().is_err()
}

/// Entries of finished commands are dropped once the map grows past this many keys.
const PRUNE_ABOVE: usize = 1024;

#[derive(Default)]
pub struct KeyOrder {
    last_command: HashMap<Vec<u8>, Finished>,
    prune_at: usize,
}

/// A request's place in its key's order: wait for [`Turn::ready`], and drop the turn when
/// finished (a command's successors start then).
pub struct Turn {
    after: Option<Finished>,
    _done: Option<watch::Sender<()>>,
}

impl Turn {
    pub async fn ready(&mut self) {
        if let Some(mut after) = self.after.take() {
            // Nothing is ever sent: this returns when the predecessor's turn is dropped.
            while after.changed().await.is_ok() {}
        }
    }
}

impl KeyOrder {
    /// Takes the next place in `key`'s order, in the order messages were received.
    pub fn enter(&mut self, key: &[u8], is_command: bool) -> Turn {
        let after = self.last_command.get(key).filter(|f| !finished(f)).cloned();
        let done = is_command.then(|| {
            let (tx, rx) = watch::channel(());
            self.last_command.insert(key.to_vec(), rx);
            tx
        });
        if self.last_command.len() > self.prune_at.max(PRUNE_ABOVE) {
            self.last_command.retain(|_, f| !finished(f));
            self.prune_at = self.last_command.len() * 2;
        }
        Turn { after, _done: done }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_ready(turn: &mut Turn) -> bool {
        futures_util::FutureExt::now_or_never(turn.ready()).is_some()
    }

    #[test]
    fn a_command_waits_for_the_previous_command_of_its_key_only() {
        let mut order = KeyOrder::default();
        let first = order.enter(b"acme", true);
        let mut second = order.enter(b"acme", true);
        let mut other = order.enter(b"beta", true);
        assert!(is_ready(&mut other), "another workspace proceeds");
        assert!(!is_ready(&mut second));
        drop(first);
        assert!(is_ready(&mut second));
    }

    #[test]
    fn queries_wait_for_earlier_commands_but_hold_nothing_up() {
        let mut order = KeyOrder::default();
        let command = order.enter(b"acme", true);
        let mut query = order.enter(b"acme", false);
        assert!(!is_ready(&mut query), "a query sees the command sent before it");
        drop(command);
        assert!(is_ready(&mut query));
        let _running_query = order.enter(b"acme", false);
        let mut next = order.enter(b"acme", true);
        assert!(is_ready(&mut next), "a running query does not block the next command");
    }

    #[test]
    fn finished_keys_are_pruned() {
        let mut order = KeyOrder::default();
        for i in 0..(PRUNE_ABOVE * 3) {
            drop(order.enter(format!("ws{i}").as_bytes(), true));
        }
        assert!(order.last_command.len() <= PRUNE_ABOVE + 1, "{}", order.last_command.len());
        assert!(order.last_command.values().all(finished), "none is busy");
    }
}
