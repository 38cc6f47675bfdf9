//! How long the loop waits before its next step: at once after a full batch, briefly after
//! a partial one, backing off while idle or failing.

use std::time::Duration;

use outbox_core::{Error, Result};

use super::{MAX_ERROR_BACKOFF, MIN_POLL, Relay, RunSummary, Step};

impl<S> Relay<S> {
    /// The wait before the next step, given how this one went.
    pub(super) fn next_wait(
        &self,
        result: Result<Step>,
        wait: Duration,
        backoff: &mut Duration,
        summary: &mut RunSummary,
    ) -> Duration {
        match result {
            Ok(Step::StandingBy) => {
                self.metrics.progress();
                (self.settings.lease_ttl / 4).min(Duration::from_secs(1))
            }
            Ok(Step::Drained {
                read,
                published,
                dead_lettered,
                held_back,
            }) => {
                summary.published += published as u64;
                summary.dead_lettered += dead_lettered as u64;
                *backoff = self.settings.poll_interval;
                // Rows all held back wait on purpose (a backoff), which a restart cannot fix.
                if published + dead_lettered > 0 || read == 0 || held_back == read {
                    self.metrics.progress();
                }
                if read >= self.settings.batch_size && held_back < read {
                    Duration::ZERO
                } else if read > held_back {
                    MIN_POLL
                } else {
                    (wait * 2).clamp(MIN_POLL, self.settings.poll_interval)
                }
            }
            Err(e @ Error::LeaseLost { .. }) => {
                tracing::warn!(error = %e, "a write was fenced off: this relay stands by");
                self.metrics.progress();
                (self.settings.lease_ttl / 4).min(Duration::from_secs(1))
            }
            Err(e) => {
                self.metrics.set_ready(false);
                tracing::warn!(error = %e, retry_in = ?*backoff, "relay step failed");
                let this = *backoff;
                *backoff = (*backoff * 2).min(MAX_ERROR_BACKOFF);
                this
            }
        }
    }
}
