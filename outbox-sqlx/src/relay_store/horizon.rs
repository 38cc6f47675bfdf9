//! PostgreSQL's strict order: the settled horizon rows are read up to.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Duration;

use outbox_core::Result;
use outbox_core::table::StrictOrderStatements;

use super::SqlxRelayStore;
use crate::database::OutboxDatabase;
use crate::error::store;

/// The waits for a pending observation to settle (7 ms in all) when the relay has read
/// everything below the horizon: the writers' transactions running when the observation was
/// taken usually commit within a millisecond or two, and a read that returned nothing instead
/// would send the relay into its idle backoff while rows are waiting.
const SETTLE_WAITS: [Duration; 3] = [
    Duration::from_millis(1),
    Duration::from_millis(2),
    Duration::from_millis(4),
];

/// The strict-order horizon: at most one observation `(xid, last id)` waits at a time. Once
/// the oldest running xid is above `xid`, every transaction that could hold an id up to
/// `last id` has finished, and the horizon moves to `last id`.
///
/// Keeping one observation, and taking one only when ids were drawn past the horizon, bounds
/// the transaction ids the relay assigns: none while the outbox is idle, and at most one per
/// settled observation under load (a fresh xid is the only way to learn an upper bound of the
/// xids already assigned; the snapshot's xmax is not one).
#[derive(Debug, Default)]
pub(super) struct Horizon {
    pending: Option<(i64, i64)>,
    settled: i64,
    /// The horizon of the last read that came back short of its limit: the relay has read
    /// everything up to it.
    drained_to: Option<i64>,
}

impl Horizon {
    /// Whether a new observation is worth a transaction id: ids were drawn past the horizon
    /// and no earlier observation is still waiting to settle.
    fn wants_observation(&self, last_id: i64) -> bool {
        self.pending.is_none() && last_id > self.settled
    }

    /// Records a new observation (if any and none is pending), then settles the pending one
    /// if the oldest running transaction (`xmin`) has passed it.
    fn settle(&mut self, observation: Option<(i64, i64)>, xmin: i64) -> i64 {
        if self.pending.is_none() {
            self.pending = observation;
        }
        if let Some((xid, last_id)) = self.pending
            && xid < xmin
        {
            self.settled = self.settled.max(last_id);
            self.pending = None;
        }
        self.settled
    }

    /// Whether waiting for the pending observation is worth it: one is pending and the relay
    /// has already read everything up to the current horizon (a relay still draining rows
    /// below it does not wait).
    fn worth_waiting(&self) -> bool {
        self.pending.is_some() && self.drained_to == Some(self.settled)
    }

    /// Notes a read up to `horizon` and whether it came back short of its limit.
    pub(super) fn note_read(&mut self, horizon: i64, short: bool) {
        self.drained_to = short.then_some(horizon);
    }
}

impl<DB: OutboxDatabase> SqlxRelayStore<DB> {
    /// The id up to which rows are settled, for strict order on PostgreSQL.
    ///
    /// Reads, in this order, each its own statement: the last id drawn (`L`); only when `L`
    /// is past the horizon and no observation is pending, a fresh xid (`X`, greater than the
    /// xid of every transaction that drew an id up to `L`, since the `txid` column is
    /// evaluated before `id`); the oldest running xid. Once the oldest running xid is above
    /// `X`, every id up to `L` belongs to a finished transaction. (The snapshot's xmax is not
    /// enough: running transactions may hold xids above it.) An idle relay therefore assigns
    /// no transaction ids.
    ///
    /// Only what can move the horizon is read: while an observation is pending, the oldest
    /// running xid alone (`L` would not be used); with none pending and no id drawn past the
    /// horizon, `L` alone (nothing waits to settle). A relay draining a settled backlog thus
    /// makes one round trip for the horizon per read, not two.
    ///
    /// When the relay has read everything up to the horizon and an observation is pending,
    /// the oldest running xid is read again after 1, 2 and 4 ms until it settles: a busy
    /// outbox is read as soon as its in-flight writers commit, instead of the relay backing
    /// off on an empty read; a long transaction costs such a read at most 7 ms.
    pub(super) async fn settled_horizon(&self, sql: &StrictOrderStatements) -> Result<i64> {
        let op = "read batch: horizon";
        let mut conn = self.pool.acquire().await.map_err(store(op))?;
        let pending = self.lock_horizon().pending.is_some();
        let observation = if pending {
            None
        } else {
            let last_id = DB::fetch::<(Option<i64>,)>(&mut conn, &sql.select_last_id, vec![])
                .await
                .map_err(store(op))?;
            let Some((Some(last_id),)) = last_id.into_iter().next() else {
                return Ok(0); // nothing was ever inserted
            };
            if !self.lock_horizon().wants_observation(last_id) {
                return Ok(self.lock_horizon().settled);
            }
            let xid = DB::fetch::<(i64,)>(&mut conn, &sql.select_new_xid, vec![])
                .await
                .map_err(store(op))?;
            self.xids_assigned.fetch_add(1, Ordering::Relaxed);
            Some((xid.first().map_or(0, |(xid,)| *xid), last_id))
        };
        let xmin = DB::fetch::<(i64,)>(&mut conn, &sql.select_xmin, vec![])
            .await
            .map_err(store(op))?;
        let xmin = xmin.first().map_or(0, |(xmin,)| *xmin);
        let mut settled = self.lock_horizon().settle(observation, xmin);
        for wait in SETTLE_WAITS {
            if !self.lock_horizon().worth_waiting() {
                break;
            }
            tokio::time::sleep(wait).await;
            let xmin = DB::fetch::<(i64,)>(&mut conn, &sql.select_xmin, vec![])
                .await
                .map_err(store(op))?;
            let xmin = xmin.first().map_or(0, |(xmin,)| *xmin);
            settled = self.lock_horizon().settle(None, xmin);
        }
        Ok(settled)
    }

    pub(super) fn lock_horizon(&self) -> std::sync::MutexGuard<'_, Horizon> {
        self.horizon.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::Horizon;

    #[test]
    fn waits_only_for_a_pending_observation_once_everything_below_the_horizon_was_read() {
        let mut horizon = Horizon::default();
        // Ids up to 10 drawn, xid 100 observed, a writer with xid 99 still running.
        assert_eq!(horizon.settle(Some((100, 10)), 99), 0);
        horizon.note_read(0, false);
        assert!(
            !horizon.worth_waiting(),
            "a full read: rows below the horizon remain"
        );
        horizon.note_read(0, true);
        assert!(
            horizon.worth_waiting(),
            "caught up, and rows wait past the horizon"
        );
        // The writer committed: the observation settles and nothing is pending.
        assert_eq!(horizon.settle(None, 101), 10);
        assert!(!horizon.worth_waiting());
    }

    #[test]
    fn an_idle_outbox_is_not_waited_for() {
        let mut horizon = Horizon::default();
        assert_eq!(horizon.settle(None, 50), 0);
        horizon.note_read(0, true);
        assert!(!horizon.worth_waiting());
    }
}
