//! `outbox-relay dead-letters list|retry|discard`: inspect and resolve events that failed
//! permanently.

use outbox_core::Result;
use outbox_core::relay::{AdminStore, DeadLetter};
use outbox_sqlx::{OutboxDatabase, SqlxRelayStore};
use sqlx::Pool;

use super::{CommandError, Outcome};
use crate::cli::{DeadLetterCommand, Format};
use crate::settings::Settings;

/// Runs `command`, printing what it did.
pub(super) async fn execute<DB: OutboxDatabase>(
    pool: Pool<DB>,
    settings: &Settings,
    command: DeadLetterCommand,
) -> Result<Outcome, CommandError> {
    let store = settings.relay_store(pool)?;
    let requeue = Requeue::new(settings).await?;
    match command {
        DeadLetterCommand::List { limit, format } => {
            print!("{}", list(&store, limit, format == Format::Json).await?);
            Ok(Outcome::Success)
        }
        DeadLetterCommand::Retry {
            key: Some(key),
            topic,
            ..
        } => {
            let retried = retry_key(&store, &requeue, &key, topic.as_deref()).await?;
            if retried.is_empty() {
                eprintln!("error: no dead letter with key {key:?}");
                return Ok(Outcome::Failure);
            }
            println!("retried: {}", joined(&retried));
            Ok(Outcome::Success)
        }
        DeadLetterCommand::Retry { ids, .. } => apply(&store, Some(&requeue), &ids).await,
        DeadLetterCommand::Discard { ids } => apply(&store, None, &ids).await,
    }
}

fn joined(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(d: &DeadLetter) -> String {
    let key = d.record.event_key.as_deref().map_or_else(
        || "-".to_owned(),
        |k| String::from_utf8_lossy(k).into_owned(),
    );
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}",
        d.record.id, d.record.event_id, d.record.topic, key, d.attempts, d.error
    )
}

/// `dead-letters list`: at most `limit`, oldest first, as lines or JSON.
async fn list<DB: OutboxDatabase>(
    store: &SqlxRelayStore<DB>,
    limit: usize,
    json: bool,
) -> Result<String> {
    let letters = store.dead_letters(limit).await?;
    if json {
        let list: Vec<serde_json::Value> = letters
            .iter()
            .map(|d| {
                serde_json::json!({
                    "id": d.record.id,
                    "event_id": d.record.event_id.hyphenated().to_string(),
                    "topic": d.record.topic,
                    "key": d.record.event_key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned()),
                    "event_type": d.record.event_type,
                    "payload_bytes": d.record.payload.len(),
                    "attempts": d.attempts,
                    "error": d.error,
                })
            })
            .collect();
        return Ok(format!("{}\n", serde_json::Value::Array(list)));
    }
    let mut out = String::from("id\tevent_id\ttopic\tkey\tattempts\terror\n");
    for d in &letters {
        out.push_str(&describe(d));
        out.push('\n');
    }
    Ok(out)
}

/// Where a retried dead letter goes: back into `outbox_events` at its place (polling), or
/// into the WAL as a message carrying its place (`source = "wal"`), since a WAL relay does
/// not read the table.
enum Requeue {
    Table,
    #[cfg(feature = "postgres")]
    Wal(sqlx::PgPool, outbox_core::table::TableNames),
}

impl Requeue {
    async fn new(settings: &Settings) -> Result<Self> {
        #[cfg(feature = "postgres")]
        if settings.source == crate::config::EventSource::Wal {
            let pool = crate::wal::command::pool(settings).await?;
            return Ok(Self::Wal(pool, settings.tables.clone()));
        }
        let _ = settings;
        Ok(Self::Table)
    }

    async fn retry<DB: OutboxDatabase>(&self, store: &SqlxRelayStore<DB>, id: i64) -> Result<bool> {
        match self {
            Self::Table => store.retry_dead_letter(id).await,
            #[cfg(feature = "postgres")]
            Self::Wal(pool, names) => {
                outbox_sqlx::postgres::retry_wal_dead_letter(pool, names, id).await
            }
        }
    }
}

/// `dead-letters retry IDS` (with `requeue`) or `discard IDS`: prints the ids done, and
/// fails naming those not found.
async fn apply<DB: OutboxDatabase>(
    store: &SqlxRelayStore<DB>,
    requeue: Option<&Requeue>,
    ids: &[i64],
) -> Result<Outcome, CommandError> {
    let retry = requeue.is_some();
    let mut missing = Vec::new();
    // In outbox order: a later dead letter of a key retried first would be held back behind
    // an earlier one still dead.
    let mut order = ids.to_vec();
    if retry {
        order.sort_unstable();
        order.dedup();
    }
    for id in order {
        let found = match requeue {
            Some(requeue) => requeue.retry(store, id).await?,
            None => store.discard_dead_letter(id).await?,
        };
        if !found {
            missing.push(id);
        }
    }
    let done: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !missing.contains(id))
        .collect();
    if !done.is_empty() {
        let verb = if retry { "retried" } else { "discarded" };
        println!("{verb}: {}", joined(&done));
    }
    if missing.is_empty() {
        return Ok(Outcome::Success);
    }
    eprintln!("error: no dead letter with id {}", joined(&missing));
    Ok(Outcome::Failure)
}

/// `dead-letters retry --key`: retries every dead letter of `key` (of `topic`, or of every
/// topic), in outbox order; returns their ids.
async fn retry_key<DB: OutboxDatabase>(
    store: &SqlxRelayStore<DB>,
    requeue: &Requeue,
    key: &str,
    topic: Option<&str>,
) -> Result<Vec<i64>> {
    let mut ids: Vec<i64> = store
        .dead_letters(usize::MAX)
        .await?
        .into_iter()
        .filter(|d| {
            d.record.event_key.as_deref() == Some(key.as_bytes())
                && topic.is_none_or(|t| d.record.topic == t)
        })
        .map(|d| d.record.id)
        .collect();
    ids.sort_unstable();
    let mut retried = Vec::with_capacity(ids.len());
    for id in ids {
        if requeue.retry(store, id).await? {
            retried.push(id);
        }
    }
    Ok(retried)
}
