//! A relay store in memory, for tests and the quickstart.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::{
    AdminStore, BlockedKey, DeadLetter, FailureStore, Fence, InsertRows, LeaseStore, OutboxRecord,
    OutboxStatus, ReadRow, RelayStore,
};
use crate::{Error, NewOutboxRow, Result};

/// A relay store ([`RelayStore`], [`FailureStore`], [`LeaseStore`], [`AdminStore`]) in
/// process memory, following their contracts (the conformance suite runs on
/// it). Rows are committed as soon as they are inserted.
#[derive(Debug, Default)]
pub struct MemoryRelayStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_id: i64,
    events: BTreeMap<i64, OutboxRecord>,
    attempts: BTreeMap<Uuid, (u32, String)>,
    dead: BTreeMap<i64, DeadLetter>,
    leases: BTreeMap<String, Lease>,
}

#[derive(Debug)]
struct Lease {
    holder: String,
    token: i64,
    expires: Instant,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl State {
    fn check(&self, fence: Option<&Fence>) -> Result<()> {
        let Some(fence) = fence else {
            return Ok(());
        };
        match self.leases.get(&fence.lease) {
            Some(lease) if lease.holder == fence.holder && lease.token == fence.token => Ok(()),
            _ => Err(Error::LeaseLost {
                lease: fence.lease.clone(),
                token: fence.token,
            }),
        }
    }
}

impl MemoryRelayStore {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every update is a handful of map operations that cannot panic half-way.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(state: &mut State, mut record: OutboxRecord) {
        state.next_id += 1;
        record.id = state.next_id;
        state.events.insert(record.id, record);
    }
}

impl InsertRows for MemoryRelayStore {
    async fn insert_rows(&self, rows: &[NewOutboxRow]) -> Result<()> {
        // All or nothing, as a database statement: every row converts before any is stored.
        let records = rows
            .iter()
            .map(|row| {
                // Refused as the column would refuse it.
                row.stored_schema_id()?;
                Ok(OutboxRecord {
                    id: 0,
                    event_id: row.event_id,
                    topic: row.topic.clone(),
                    event_key: row.event_key.clone(),
                    event_type: row.event_type.clone(),
                    schema_id: row.schema_id,
                    content_type: row.content_type.clone(),
                    payload: row.payload.clone(),
                    headers: row.headers.clone(),
                    created_at_ms: now_ms(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut state = self.state();
        for record in records {
            Self::push(&mut state, record);
        }
        Ok(())
    }
}

impl RelayStore for MemoryRelayStore {
    async fn read_after(&self, after: i64, limit: usize) -> Result<Vec<ReadRow>> {
        let state = self.state();
        Ok(state
            .events
            .range(after.saturating_add(1)..)
            .map(|(_, r)| ReadRow::Record(r.clone()))
            .take(limit)
            .collect())
    }

    async fn ack(&self, ids: &[i64], fence: Option<&Fence>) -> Result<u64> {
        let mut state = self.state();
        state.check(fence)?;
        let mut deleted = 0;
        for id in ids {
            if let Some(record) = state.events.remove(id) {
                state.attempts.remove(&record.event_id);
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

impl FailureStore for MemoryRelayStore {
    async fn record_failure(&self, event_id: Uuid, error: &str) -> Result<u32> {
        let mut state = self.state();
        let entry = state.attempts.entry(event_id).or_insert((0, String::new()));
        entry.0 += 1;
        entry.1 = error.to_owned();
        Ok(entry.0)
    }

    async fn dead_letter(
        &self,
        id: i64,
        attempts: u32,
        error: &str,
        fence: Option<&Fence>,
    ) -> Result<()> {
        let mut state = self.state();
        state.check(fence)?;
        if let Some(record) = state.events.remove(&id) {
            state.attempts.remove(&record.event_id);
            state.dead.insert(
                id,
                DeadLetter {
                    record,
                    attempts,
                    error: error.to_owned(),
                },
            );
        }
        Ok(())
    }

    async fn blocked_keys(&self) -> Result<Vec<(BlockedKey, i64)>> {
        let mut keys: BTreeMap<BlockedKey, i64> = BTreeMap::new();
        // Dead letters iterate in id order: the first of a key is its smallest id.
        for (id, d) in &self.state().dead {
            keys.entry((d.record.topic.clone(), d.record.event_key.clone()))
                .or_insert(*id);
        }
        Ok(keys.into_iter().collect())
    }
}

impl LeaseStore for MemoryRelayStore {
    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<i64>> {
        let mut state = self.state();
        let now = Instant::now();
        let expires = now + ttl;
        match state.leases.get_mut(name) {
            Some(lease) if lease.holder == holder || lease.expires <= now => {
                lease.holder = holder.to_owned();
                lease.token += 1;
                lease.expires = expires;
                Ok(Some(lease.token))
            }
            Some(_) => Ok(None),
            None => {
                state.leases.insert(
                    name.to_owned(),
                    Lease {
                        holder: holder.to_owned(),
                        token: 1,
                        expires,
                    },
                );
                Ok(Some(1))
            }
        }
    }

    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        token: i64,
        ttl: Duration,
    ) -> Result<bool> {
        let mut state = self.state();
        match state.leases.get_mut(name) {
            Some(lease) if lease.holder == holder && lease.token == token => {
                lease.expires = Instant::now() + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let mut state = self.state();
        if let Some(lease) = state.leases.get_mut(name)
            && lease.holder == holder
        {
            lease.expires = Instant::now();
        }
        Ok(())
    }
}

impl AdminStore for MemoryRelayStore {
    async fn status(&self, lease: &str) -> Result<OutboxStatus> {
        let state = self.state();
        // The head of the outbox: the smallest id, as the SQL stores read it.
        let oldest = state.events.values().next().map(|r| r.created_at_ms);
        Ok(OutboxStatus {
            backlog: state.events.len() as u64,
            backlog_estimated: false,
            oldest_age: oldest
                .map(|ms| Duration::from_millis(u64::try_from(now_ms() - ms).unwrap_or_default())),
            dead_letters: state.dead.len() as u64,
            leader: state
                .leases
                .get(lease)
                .filter(|l| l.expires > Instant::now())
                .map(|l| l.holder.clone()),
        })
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        Ok(self.state().dead.values().take(limit).cloned().collect())
    }

    async fn retry_dead_letter(&self, id: i64) -> Result<bool> {
        let mut state = self.state();
        match state.dead.remove(&id) {
            Some(dead) => {
                state.events.insert(id, dead.record);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn discard_dead_letter(&self, id: i64) -> Result<bool> {
        Ok(self.state().dead.remove(&id).is_some())
    }
}
