//! WAL mode across a PostgreSQL restart, on a cluster of the test's own (`initdb` on a spare
//! port, `wal_level = logical`): the relay binary (`source = "wal"`) drains a backlog while
//! several tasks publish, PostgreSQL restarts (`pg_ctl restart -m fast`) mid-drain, with an
//! event Kafka has not acknowledged (the broker is down meanwhile), and afterwards every
//! committed event is on the topic, per key in publish order (duplicates allowed, loss and
//! reordering not).
//!
//! The binaries come from `/usr/lib/postgresql/15/bin` (or `OUTBOX_TEST_PG_BIN`); without
//! them the test is skipped outside CI and fails under `CI=true`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Received, order};
use outbox_core::wal::WalNames;
use outbox_relay::config::EventSource;
use outbox_sqlx::Outbox;
use sqlx::PgPool;
use uuid::Uuid;

const KEYS: usize = 40;
const WRITERS: usize = 4;
const EVENTS: usize = 2_000;

/// A PostgreSQL cluster in a temporary directory, stopped (immediately) when dropped.
struct OwnCluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
}

impl OwnCluster {
    /// Creates and starts a cluster, or `None` (outside CI) when the binaries are missing.
    fn start() -> Option<Self> {
        let bin = PathBuf::from(
            std::env::var("OUTBOX_TEST_PG_BIN")
                .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".to_owned()),
        );
        if !bin.join("initdb").exists() || !bin.join("pg_ctl").exists() {
            let reason = format!("no initdb and pg_ctl in {}", bin.display());
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: {reason}"
            );
            eprintln!("skipping: {reason}");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        // initdb refuses root: the cluster belongs to the `postgres` user when we are root.
        if as_root() {
            run(Command::new("chown").arg("postgres:").arg(dir.path()));
        }
        let cluster = Self {
            data: dir.path().join("data"),
            bin,
            port: common::free_port(),
            dir,
        };
        let data = cluster.data.display().to_string();
        run(cluster.command("initdb").args([
            "-D",
            &data,
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]));
        let options = format!(
            "-c port={} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c wal_level=logical -c max_wal_senders=4 -c max_replication_slots=4 -c fsync=off",
            cluster.port,
            cluster.dir.path().display()
        );
        let log = cluster.dir.path().join("log").display().to_string();
        run(cluster
            .command("pg_ctl")
            .args(["-D", &data, "-l", &log, "-w", "-o", &options, "start"]));
        Some(cluster)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `name` from the cluster's binaries, as the `postgres` user when we are root.
    fn command(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        if as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// `pg_ctl restart -m fast`: clients are disconnected, the cluster shuts down cleanly and
    /// comes back with the same options.
    fn restart(&self) {
        // The new server logs to the file too: with our pipe as its stdout, reading pg_ctl's
        // output would wait for the server to exit.
        run(self.command("pg_ctl").args([
            "-D",
            &self.data.display().to_string(),
            "-l",
            &self.dir.path().join("log").display().to_string(),
            "-m",
            "fast",
            "-w",
            "restart",
        ]));
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args([
                "-D",
                &self.data.display().to_string(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}

fn as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn run(command: &mut Command) {
    let out = command.output().expect("command runs");
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The slot's confirmed LSN is at or past `lsn`.
async fn confirmed_past(pool: &PgPool, slot: &str, lsn: &str) -> bool {
    let done: Option<(Option<bool>,)> = sqlx::query_as(
        "SELECT confirmed_flush_lsn >= CAST($2 AS PG_LSN) FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(slot)
    .bind(lsn)
    .fetch_optional(pool)
    .await
    .ok()
    .flatten();
    done.is_some_and(|(b,)| b == Some(true))
}

/// The relay process, killed if the test fails before stopping it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// PostgreSQL refuses new connections while it shuts down (SQLSTATE 57P03).
async fn shutting_down(url: &str) -> bool {
    use sqlx::Connection;
    match sqlx::PgConnection::connect(url).await {
        Err(sqlx::Error::Database(e)) => e.code().as_deref() == Some("57P03"),
        Err(_) => false,
        Ok(conn) => {
            let _ = conn.close().await;
            false
        }
    }
}

/// A client streams the slot.
async fn slot_streamed(pool: &PgPool, slot: &str) -> bool {
    let active: Option<(bool,)> =
        sqlx::query_as("SELECT active FROM pg_replication_slots WHERE slot_name = $1")
            .bind(slot)
            .fetch_optional(pool)
            .await
            .expect("slot");
    active.is_some_and(|(a,)| a)
}

async fn current_lsn(pool: &PgPool) -> String {
    let (lsn,): (String,) = sqlx::query_as("SELECT CAST(pg_current_wal_lsn() AS TEXT)")
        .fetch_one(pool)
        .await
        .expect("lsn");
    lsn
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn write_config(path: &Path, url: &str, prefix: &str, bootstrap: &str) {
    std::fs::write(
        path,
        format!(
            "source = \"wal\"\ndatabase_url = \"{url}\"\ntable_prefix = \"{prefix}\"\n\
             [kafka]\nbootstrap_servers = \"{bootstrap}\"\n\
             [relay]\nbatch_size = 500\npoll_interval = \"20ms\"\nretry_backoff = \"200ms\"\n\
             [http]\nlisten = \"\"\n[registry]\nlisten = \"\"\n"
        ),
    )
    .expect("config file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_mid_drain_loses_nothing_in_wal_mode() {
    let Some(cluster) = tokio::task::spawn_blocking(OwnCluster::start)
        .await
        .expect("cluster")
    else {
        return;
    };
    let cluster = Arc::new(cluster);
    let url = cluster.url();
    let pool = PgPool::connect(&url).await.expect("own cluster");
    let kafka = common::cluster(1, "orders", 4);
    let names = common::fresh_names();
    let mut config = common::config(&url, &kafka.bootstrap_servers(), &names, "");
    config.source = EventSource::Wal;
    outbox_relay::commands::migrate(&pool, &config)
        .await
        .expect("migrate creates the slot");
    let slot = WalNames::new(&names).slot;
    let outbox = Outbox::builder(pool.clone())
        .table_names(names.clone())
        .register::<common::OrderPlaced>()
        .wal(true)
        .build()
        .await
        .expect("outbox");
    let dir = tempfile::tempdir().expect("dir");
    let config_file = dir.path().join("relay.toml");
    write_config(
        &config_file,
        &url,
        &common::prefix(&names),
        &kafka.bootstrap_servers(),
    );

    // A transaction holds the gate open; the restart closes it, so no commit is in flight
    // when PostgreSQL stops (its outcome would be unknown to the writer, which is the
    // caller's business, not the relay's).
    let gate = Arc::new(tokio::sync::RwLock::new(()));
    // The first half is a backlog before the relay starts; the second is written while it runs.
    let backlog = Arc::new(tokio::sync::Barrier::new(WRITERS + 1));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (pool, outbox, gate) = (pool.clone(), outbox.clone(), Arc::clone(&gate));
            let backlog = Arc::clone(&backlog);
            tokio::spawn(async move {
                let keys: Vec<usize> = (0..KEYS).filter(|k| k % WRITERS == w).collect();
                let mut ids = Vec::new();
                for chunk in (0..EVENTS / WRITERS).collect::<Vec<_>>().chunks(10) {
                    if chunk[0] == EVENTS / WRITERS / 2 {
                        backlog.wait().await;
                    }
                    let events: Vec<_> = chunk
                        .iter()
                        .map(|&i| order(keys[i % keys.len()], i))
                        .collect();
                    let _open = gate.read().await;
                    let mut tx = pool.begin().await.expect("begin");
                    ids.extend(
                        outbox
                            .publish_all(&mut *tx, &events)
                            .await
                            .expect("publish"),
                    );
                    tx.commit().await.expect("commit");
                    drop(_open);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                ids
            })
        })
        .collect();

    backlog.wait().await;
    let mut relay = KillOnDrop(common::spawn_relay(&config_file));
    wait_for("the relay to stream the slot", async || {
        slot_streamed(&pool, &slot).await
    })
    .await;
    // Kafka goes down under the draining relay, and one more event commits: Kafka cannot
    // acknowledge it, so the relay cannot have confirmed it when PostgreSQL stops.
    kafka.broker_down(1).expect("broker down");
    let mut tx = pool.begin().await.expect("begin");
    let in_flight = outbox
        .publish_all(&mut *tx, &[order(KEYS + 1, 0)])
        .await
        .expect("publish");
    tx.commit().await.expect("commit");
    let unacknowledged = current_lsn(&pool).await;
    {
        let _closed = gate.write().await;
        assert!(
            !confirmed_past(&pool, &slot, &unacknowledged).await,
            "the relay confirmed an event Kafka never acknowledged"
        );
        let (before, lag): (String, i64) = sqlx::query_as(
            "SELECT CAST(confirmed_flush_lsn AS TEXT), \
             CAST(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) AS BIGINT) \
             FROM pg_replication_slots WHERE slot_name = $1",
        )
        .bind(&slot)
        .fetch_one(&pool)
        .await
        .expect("slot");
        eprintln!("restarting PostgreSQL: confirmed {before}, {lag} WAL bytes not yet confirmed");
        let restarting = tokio::task::spawn_blocking({
            let cluster = Arc::clone(&cluster);
            move || cluster.restart()
        });
        // A fast shutdown waits for each walsender's client to confirm what it was sent, so
        // PostgreSQL stays "shutting down" until Kafka is back and the relay confirms.
        wait_for("PostgreSQL to be shutting down", async || {
            shutting_down(&url).await
        })
        .await;
        kafka.broker_up(1).expect("broker up");
        restarting.await.expect("pg_ctl restart");
    }

    let mut ids_by_writer = vec![in_flight];
    for writer in writers {
        ids_by_writer.push(writer.await.expect("writer"));
    }
    // One more event after the writers, on a key of its own: the slot's confirmed LSN can
    // only pass it through a relay that came back after the restart.
    let mut tx = pool.begin().await.expect("begin");
    ids_by_writer.push(
        outbox
            .publish_all(&mut *tx, &[order(KEYS, 0)])
            .await
            .expect("publish the marker"),
    );
    tx.commit().await.expect("commit");
    let end = current_lsn(&pool).await;
    wait_for("the slot's confirmed LSN to pass every write", async || {
        confirmed_past(&pool, &slot, &end).await
    })
    .await;
    common::stop_gracefully(&mut relay.0);

    let ids: Vec<Uuid> = ids_by_writer.iter().flatten().copied().collect();
    assert_eq!(ids.len(), EVENTS + 2);
    let bootstrap = kafka.bootstrap_servers();
    let records: Vec<Received> = tokio::task::spawn_blocking(move || {
        common::consume(&bootstrap, "orders", 4, EVENTS + 2, Duration::from_secs(60))
    })
    .await
    .expect("consumer");
    common::assert_every_event_in_key_order(&records, &ids_by_writer);
    eprintln!(
        "{} records for {} events across a PostgreSQL restart",
        records.len(),
        EVENTS + 2
    );
    outbox_sqlx::postgres::drop_wal_slot(&pool, &names)
        .await
        .expect("drop slot");
    pool.close().await;
}
