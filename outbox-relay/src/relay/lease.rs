//! The relay lease: held and renewed, given up at once when taken over, and the fence every
//! write carries.

use std::time::Instant;

use outbox_core::Result;
use outbox_core::relay::{Fence, LeaseStore, RelayStore};

use super::{Relay, State};

impl<S: RelayStore + LeaseStore> Relay<S> {
    /// Holds (acquires or renews) the lease; false when another instance has it.
    pub(super) async fn hold_lease(&self, state: &mut State) -> Result<bool> {
        let ttl = self.settings.lease_ttl;
        let now = Instant::now();
        if let Some(until) = state.lease_until
            && until > now + ttl * 2 / 3
        {
            return Ok(true);
        }
        let asked = Instant::now();
        let held = match (state.lease_until, state.token) {
            (Some(_), Some(token)) => {
                let renewed = self
                    .store
                    .renew_lease(&self.settings.lease_name, &self.instance, token, ttl)
                    .await?;
                if !renewed {
                    self.lease_lost(state);
                }
                renewed
            }
            _ if state.retake_after.is_some_and(|t| t > now) => false,
            _ => match self
                .store
                .try_acquire_lease(&self.settings.lease_name, &self.instance, ttl)
                .await?
            {
                Some(token) => {
                    tracing::info!(instance = %self.instance, generation = token, "holding the relay lease");
                    state.token = Some(token);
                    true
                }
                None => false,
            },
        };
        state.lease_until = held.then_some(asked + ttl);
        self.metrics.leader.set(i64::from(held));
        Ok(held)
    }

    /// Stops at once after the lease was taken over: nothing more is read or produced,
    /// and the lease is not tried again for a lease period (a live twin with the same
    /// identity keeps it that long).
    pub(super) fn lease_lost(&self, state: &mut State) {
        if state.lease_until.is_some() {
            tracing::error!(
                instance = %self.instance,
                "the relay lease was taken over (by another relay, or one using the same instance_id); stopping"
            );
        }
        state.lease_until = None;
        state.retake_after = Some(Instant::now() + self.settings.lease_ttl);
        state.cursor = None;
        self.metrics.leader.set(0);
    }

    /// The lease generation writes are made under.
    pub(super) fn fence(&self, state: &State) -> Option<Fence> {
        state.token.map(|token| Fence {
            lease: self.settings.lease_name.clone(),
            holder: self.instance.clone(),
            token,
        })
    }
}
