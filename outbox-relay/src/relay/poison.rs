//! Rows set aside: dead letters, and the keys they block under the block policy.

use std::collections::HashMap;
use std::time::Instant;

use outbox_core::relay::{BlockedKey, FailureStore, LeaseStore, RelayStore};
use outbox_core::{Error, Result};

use super::{Finished, Relay, State, block};
use crate::config::PoisonPolicy;

impl<S: RelayStore + FailureStore + LeaseStore> Relay<S> {
    /// Moves a row that cannot be produced to the dead-letter table at once (retrying cannot
    /// help) and, under the block policy, blocks its key.
    pub(super) async fn dead_letter_now(
        &self,
        id: i64,
        key: Option<BlockedKey>,
        reason: &str,
        state: &mut State,
        done: &mut Finished,
    ) -> Result<()> {
        let moved = self
            .move_to_dead_letters(id, 0, reason, state, done)
            .await?;
        if moved {
            tracing::error!(
                id,
                reason,
                "row cannot become a Kafka record; dead-lettered"
            );
        }
        if self.settings.poison_policy == PoisonPolicy::Block
            && let Some(key) = key
        {
            if moved {
                block(state, key, id);
            } else {
                done.held.insert(key);
            }
        }
        Ok(())
    }

    /// Moves a row to the dead-letter table; false when it cannot be, because a dead letter
    /// with the same `event_id` exists (a writer reused an id): the row then stays in the
    /// outbox, reported, and the others go on.
    pub(super) async fn move_to_dead_letters(
        &self,
        id: i64,
        attempts: u32,
        reason: &str,
        state: &State,
        done: &mut Finished,
    ) -> Result<bool> {
        match self
            .store
            .dead_letter(id, attempts, reason, self.fence(state).as_ref())
            .await
        {
            Ok(()) => {
                self.metrics.dead_lettered.inc();
                done.dead_lettered += 1;
                Ok(true)
            }
            Err(Error::Conflict { what }) => {
                tracing::error!(id, %what, reason, "cannot dead-letter the row: a dead letter has its event_id; it stays in the outbox");
                done.left_behind = true;
                done.held_back += 1;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the row `id` of `key` comes after a dead letter of its key. A key seen blocked
    /// is re-read once per batch, since an operator may just have retried it; a key found
    /// retried is held back for this batch, so the next read (from the start) produces the
    /// retried rows first.
    pub(super) async fn is_blocked(
        &self,
        key: &BlockedKey,
        id: i64,
        state: &mut State,
        fresh: &mut bool,
        done: &mut Finished,
    ) -> Result<bool> {
        // A keyless dead letter blocks nothing (see `block`).
        let after_dead = |state: &State| {
            key.1.is_some() && state.blocked.get(key).is_some_and(|dead| *dead < id)
        };
        if self.settings.poison_policy != PoisonPolicy::Block || !after_dead(state) {
            return Ok(false);
        }
        if !*fresh {
            let before = state.blocked.clone();
            if self.reload_blocked(state).await? {
                for (key, dead) in before {
                    if state.blocked.get(&key) != Some(&dead) {
                        done.held.insert(key);
                    }
                }
                done.left_behind = true;
            }
            *fresh = true;
        }
        Ok(after_dead(state))
    }

    /// Re-reads the dead letters' keys; true when a key lost a dead letter (it was retried or
    /// discarded), so rows below the cursor may be waiting.
    pub(super) async fn reload_blocked(&self, state: &mut State) -> Result<bool> {
        let fresh: HashMap<BlockedKey, i64> =
            self.store.blocked_keys().await?.into_iter().collect();
        let released = state
            .blocked
            .iter()
            .any(|(key, dead)| fresh.get(key).is_none_or(|now| now > dead));
        state.blocked = fresh;
        state.blocked_read_at = Some(Instant::now());
        Ok(released)
    }

    /// Parks a row of a blocked key in the dead-letter table, behind its key's dead letter.
    pub(super) async fn park(&self, id: i64, state: &State, done: &mut Finished) -> Result<()> {
        let reason = "held back: an earlier event with this key is in the dead-letter table";
        self.move_to_dead_letters(id, 0, reason, state, done)
            .await
            .map(drop)
    }
}
