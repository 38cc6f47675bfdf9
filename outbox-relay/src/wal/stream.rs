//! The replication stream WAL mode reads, behind a small trait of ours so the client
//! (`pgwire-replication` today) can be replaced.

use std::future::Future;

use outbox_core::wal::WalNames;
use outbox_core::{Error, Result};

use super::tls::{self, TlsSettings};
use pgwire_replication::{
    Lsn, PgWireError, ReplicationClient, ReplicationConfig, ReplicationEvent,
};

/// What the stream delivers, in WAL (commit) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalEvent {
    /// A transaction starts; it committed at `commit_time_ms` (Unix epoch).
    Begin {
        /// The commit time, in milliseconds since the Unix epoch.
        commit_time_ms: i64,
    },
    /// A logical message of a committed transaction.
    Message {
        /// Its position in the WAL.
        lsn: u64,
        /// The prefix it was emitted with.
        prefix: String,
        /// Its content.
        content: Vec<u8>,
    },
    /// The transaction ended; confirming `end_lsn` passes it.
    Commit {
        /// The end of the commit record.
        end_lsn: u64,
    },
    /// The server's heartbeat: nothing of ours up to `wal_end`.
    KeepAlive {
        /// The server's current WAL end.
        wal_end: u64,
    },
}

/// A logical replication stream from the slot's confirmed LSN on.
///
/// # Contract
///
/// - `next` returns the events of committed transactions in commit order, each transaction
///   from `Begin` to `Commit`; `None` when the server ended the stream.
/// - `confirm(lsn)` tells the server everything up to `lsn` is done: after a reconnect the
///   stream starts after the last confirmed LSN. Confirming less is safe (duplicates), never
///   more than what is done (loss).
pub trait WalStream: Send {
    /// The next event.
    fn next(&mut self) -> impl Future<Output = Result<Option<WalEvent>>> + Send;
    /// Confirms (flushes) everything up to `lsn`.
    fn confirm(&mut self, lsn: u64);
}

/// [`WalStream`] over `pgwire-replication` (pgoutput, proto version 1, messages on).
pub struct PgWireStream {
    client: ReplicationClient,
    slot: String,
    /// The TLS tunnel's pipe, stopped with the stream.
    tunnel: Option<tokio::task::AbortHandle>,
}

impl Drop for PgWireStream {
    fn drop(&mut self) {
        if let Some(task) = &self.tunnel {
            task.abort();
        }
    }
}

impl std::fmt::Debug for PgWireStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgWireStream")
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

/// PostgreSQL's epoch (2000-01-01) in Unix milliseconds.
const PG_EPOCH_MS: i64 = 946_684_800_000;

impl PgWireStream {
    /// Connects to the slot of `names` with the credentials of `database_url` and starts
    /// streaming from the slot's confirmed LSN.
    ///
    /// # Errors
    ///
    /// [`Error::WalSlotInUse`] when another relay streams from the slot; [`Error::WalSlot`]
    /// when the slot is missing; [`Error::InvalidConfig`] for a URL it cannot use, or
    /// certificate and key files it cannot read; [`Error::Store`] otherwise, permanent when
    /// TLS failed (naming the URL's TLS parameters, never the password).
    ///
    /// TLS follows the URL's `sslmode`, `sslrootcert`, `sslcert` and `sslkey` as libpq does
    /// (default `prefer`).
    pub async fn connect(database_url: &str, names: &WalNames) -> Result<Self> {
        let (mut config, tls) = replication_config(database_url, names)?;
        let tunnel = tls::tunnel(&config.host, config.port, &tls).await?;
        if let Some(tunnel) = &tunnel {
            // The client reaches the server through the tunnel's Unix socket.
            config.host = tunnel.dir.to_string_lossy().into_owned();
            config.port = tunnel.port;
        }
        let tunnel = tunnel.map(|t| t.task);
        let connected = ReplicationClient::connect(config).await;
        let mut client = match connected {
            Ok(client) => client,
            Err(e) => {
                if let Some(task) = &tunnel {
                    task.abort();
                }
                return Err(stream_error(&names.slot, e));
            }
        };
        client
            .wait_started()
            .await
            .map_err(|e| stream_error(&names.slot, e))?;
        Ok(Self {
            client,
            slot: names.slot.clone(),
            tunnel,
        })
    }
}

impl WalStream for PgWireStream {
    async fn next(&mut self) -> Result<Option<WalEvent>> {
        loop {
            let event = self
                .client
                .recv()
                .await
                .map_err(|e| stream_error(&self.slot, e))?;
            let Some(event) = event else { return Ok(None) };
            return Ok(Some(match event {
                ReplicationEvent::Begin {
                    commit_time_micros, ..
                } => WalEvent::Begin {
                    commit_time_ms: PG_EPOCH_MS + commit_time_micros / 1000,
                },
                ReplicationEvent::Message {
                    transactional: true,
                    lsn,
                    prefix,
                    content,
                } => WalEvent::Message {
                    lsn: lsn.as_u64(),
                    prefix,
                    content: content.to_vec(),
                },
                ReplicationEvent::Commit { end_lsn, .. } => WalEvent::Commit {
                    end_lsn: end_lsn.as_u64(),
                },
                ReplicationEvent::KeepAlive { wal_end, .. } => WalEvent::KeepAlive {
                    wal_end: wal_end.as_u64(),
                },
                // Table changes (the publication has none), non-transactional messages (not
                // ours: ours are always transactional) and the rest.
                _ => continue,
            }));
        }
    }

    fn confirm(&mut self, lsn: u64) {
        self.client.update_applied_lsn(Lsn::from_u64(lsn));
    }
}

fn replication_config(
    database_url: &str,
    names: &WalNames,
) -> Result<(ReplicationConfig, TlsSettings)> {
    let invalid = |reason: &str| Error::InvalidConfig {
        key: "database_url".to_owned(),
        reason: format!("wal mode: {reason}"),
    };
    let url = url::Url::parse(database_url).map_err(|_| invalid("not a URL"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(invalid("WAL mode needs a postgres:// database_url"));
    }
    let tls = TlsSettings::from_url(&url)?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = if url.username().is_empty() {
        "postgres".to_owned()
    } else {
        decode(url.username())
    };
    let password = url.password().map(decode).unwrap_or_default();
    let database = decode(url.path().trim_start_matches('/'));
    let host = url.host_str().unwrap_or("localhost").to_owned();
    let config = ReplicationConfig::new(
        host,
        user,
        password,
        if database.is_empty() {
            "postgres".to_owned()
        } else {
            database
        },
        names.slot.clone(),
        names.publication.clone(),
    )
    .with_port(url.port().unwrap_or(5432))
    .with_start_lsn(Lsn::ZERO)
    // The client reports the confirmed LSN on this beat (10 s by default): shorter, so the
    // server releases WAL and shows the lag soon after events are acknowledged.
    .with_status_interval(std::time::Duration::from_secs(1))
    .with_application_name(names.slot.clone());
    Ok((config, tls))
}

/// The client's errors as ours: 55006 (the slot is active for another process) lets a standby
/// wait, 42704 (no such slot) fails loudly, a pg_hba.conf refusal without TLS names sslmode.
fn stream_error(slot: &str, e: PgWireError) -> Error {
    if let PgWireError::Server(message) = &e {
        if message.contains("55006") {
            return Error::WalSlotInUse {
                slot: slot.to_owned(),
            };
        }
        if message.contains("42704") {
            return Error::WalSlot {
                slot: slot.to_owned(),
                reason: format!("the server does not know it: {message}"),
            };
        }
        // pg_hba.conf refuses a plaintext connection (`hostssl` only): a setting to change.
        if message.contains("no encryption") {
            return Error::Store {
                operation: "wal stream",
                retryable: false,
                source: format!(
                    "{message} (TLS: the server wants it for this user; set sslmode in database_url)"
                )
                .into(),
            };
        }
    }
    Error::Store {
        operation: "wal stream",
        retryable: e.is_transient() || e.is_server(),
        source: Box::new(e),
    }
}
