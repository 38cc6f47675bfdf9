//! Two `outbox-relay run` processes share one PostgreSQL outbox. The leader renews its lease
//! while it waits for acknowledgements through a broker outage longer than `lease_ttl`, so
//! the stand-by does not take over a live leader. When the leader is frozen (SIGSTOP) past
//! its lease, the stand-by takes over; the old leader, thawed with records in flight, is
//! fenced: the database shows it deleted and dead-lettered nothing after the take-over.
//! Nothing is lost and per-key order holds. A relay restarted under the same identity takes
//! its lease back at once, as a new generation.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{Received, order};
use outbox_core::relay::AdminStore;
use outbox_core::table::{Table, TableNames};

use sqlx::Row;
use uuid::Uuid;

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill -{name}");
}

fn write_config(
    dir: &std::path::Path,
    who: &str,
    url: &str,
    prefix: &str,
    bootstrap: &str,
) -> std::path::PathBuf {
    let file = dir.join(format!("{who}.toml"));
    std::fs::write(
        &file,
        format!(
            "database_url = \"{url}?application_name={who}\"\ntable_prefix = \"{prefix}\"\n\
             [kafka]\nbootstrap_servers = \"{bootstrap}\"\n[relay]\ninstance_id = \"{who}\"\n\
             batch_size = 200\npoll_interval = \"20ms\"\nlease_ttl = \"2s\"\n\
             [http]\nlisten = \"\"\n[registry]\nlisten = \"\"\n"
        ),
    )
    .expect("config file");
    file
}

/// Audits, by application name, every delete from the outbox, every dead letter and every
/// new lease generation, with the time of the statement.
async fn audit(pool: &sqlx::PgPool, names: &TableNames, prefix: &str) {
    let events = names.qualified(outbox_core::table::Dialect::Postgres, Table::Events);
    let dead = names.qualified(outbox_core::table::Dialect::Postgres, Table::DeadLetters);
    let leases = names.qualified(outbox_core::table::Dialect::Postgres, Table::Leases);
    for sql in [
        format!(
            "CREATE TABLE {prefix}_audit (app TEXT, what TEXT, id BIGINT, at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())"
        ),
        format!(
            "CREATE FUNCTION {prefix}_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 INSERT INTO {prefix}_audit (app, what, id) VALUES (current_setting('application_name'), 'delete', OLD.id); RETURN NULL; END $$"
        ),
        format!(
            "CREATE FUNCTION {prefix}_on_dead() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 INSERT INTO {prefix}_audit (app, what, id) VALUES (current_setting('application_name'), 'dead', NEW.id); RETURN NULL; END $$"
        ),
        format!(
            "CREATE FUNCTION {prefix}_on_lease() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.fencing_token IS DISTINCT FROM OLD.fencing_token THEN \
                 INSERT INTO {prefix}_audit (app, what, id) VALUES (NEW.holder, 'lease', NEW.fencing_token); END IF; RETURN NULL; END $$"
        ),
        format!(
            "CREATE TRIGGER {prefix}_t1 AFTER DELETE ON {events} FOR EACH ROW EXECUTE FUNCTION {prefix}_on_delete()"
        ),
        format!(
            "CREATE TRIGGER {prefix}_t2 AFTER INSERT ON {dead} FOR EACH ROW EXECUTE FUNCTION {prefix}_on_dead()"
        ),
        format!(
            "CREATE TRIGGER {prefix}_t3 AFTER UPDATE ON {leases} FOR EACH ROW EXECUTE FUNCTION {prefix}_on_lease()"
        ),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn old_leader_is_fenced_after_a_take_over() {
    let Some((pool, url)) = common::postgres().await else {
        return;
    };
    let kafka = common::cluster(1, "orders", 4);
    let bootstrap = kafka.bootstrap_servers();
    let names = common::fresh_names();
    let prefix = names.name(Table::Events).to_string();
    let prefix = prefix.trim_end_matches("_events").to_owned();
    let outbox = common::order_outbox(&pool, &names).await;
    // The relay creates the lease table; create it now so the triggers can be installed.
    let config = common::config(&url, &bootstrap, &names, "");
    outbox_relay::commands::migrate(&pool, &config)
        .await
        .expect("migrate");
    audit(&pool, &names, &prefix).await;
    let mut ids: Vec<Uuid> = Vec::new();
    let mut seq = 0;
    let mut publish = async |n: usize, ids: &mut Vec<Uuid>| {
        let events: Vec<_> = (seq..seq + n).map(|i| order(i % 40, i)).collect();
        seq += n;
        let mut tx = pool.begin().await.expect("begin");
        ids.extend(
            outbox
                .publish_all(&mut *tx, &events)
                .await
                .expect("publish"),
        );
        tx.commit().await.expect("commit");
    };
    publish(500, &mut ids).await;
    let store = config.relay_store(pool.clone()).expect("store");
    let leader = async || store.status("outbox-relay").await.expect("status").leader;
    let backlog = async || store.status("outbox-relay").await.expect("status").backlog;

    let dir = tempfile::tempdir().expect("dir");
    let a_file = write_config(dir.path(), "relay-a", &url, &prefix, &bootstrap);
    let b_file = write_config(dir.path(), "relay-b", &url, &prefix, &bootstrap);
    let mut a = common::spawn_relay(&a_file);
    let deadline = Instant::now() + Duration::from_secs(60);
    while leader().await.as_deref() != Some("relay-a") || backlog().await > 0 {
        assert!(Instant::now() < deadline, "relay-a did not lead and drain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut b = common::spawn_relay(&b_file);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A broker outage three times the lease: the leader waits for acknowledgements and
    // renews meanwhile, so it is still the leader afterwards.
    kafka.broker_down(1).expect("broker down");
    publish(500, &mut ids).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        leader().await.as_deref(),
        Some("relay-a"),
        "a leader waiting on Kafka keeps its lease"
    );
    kafka.broker_up(1).expect("broker up");
    let deadline = Instant::now() + Duration::from_secs(60);
    while backlog().await > 0 {
        assert!(Instant::now() < deadline, "not drained after the outage");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Freeze the leader with batches in flight, past its lease: the stand-by takes over.
    // (A leader frozen inside a transaction holds the lease row until it is thawed; then
    // thaw it and try again.)
    let mut taken = false;
    for _ in 0..10 {
        publish(2000, &mut ids).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        signal(&a, "STOP");
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until && leader().await.as_deref() != Some("relay-b") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        taken = leader().await.as_deref() == Some("relay-b");
        // Thawed with its in-flight batches: it must not delete or dead-letter anything.
        signal(&a, "CONT");
        if taken {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(taken, "relay-b never took over from the frozen leader");
    // Events written after the take-over: the new leader drains them, the old one is fenced.
    publish(500, &mut ids).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while backlog().await > 0 {
        assert!(Instant::now() < deadline, "relay-b did not drain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    signal(&a, "TERM");
    signal(&b, "TERM");
    assert_eq!(a.wait().expect("a exits").code(), Some(0));
    assert_eq!(b.wait().expect("b exits").code(), Some(0));

    let take_over: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(EXTRACT(EPOCH FROM MIN(at)) * 1000000 AS BIGINT) FROM {prefix}_audit \
         WHERE what = 'lease' AND app = 'relay-b'"
    )))
    .fetch_one(&pool)
    .await
    .expect("take-over")
    .get(0);
    let late: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {prefix}_audit WHERE app = 'relay-a' AND what IN ('delete', 'dead') \
         AND CAST(EXTRACT(EPOCH FROM at) * 1000000 AS BIGINT) > $1"
    )))
    .bind(take_over)
    .fetch_one(&pool)
    .await
    .expect("audit")
    .get(0);
    assert_eq!(
        late, 0,
        "the old leader deleted or dead-lettered rows after the take-over"
    );
    let by_b: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {prefix}_audit WHERE app = 'relay-b' AND what = 'delete'"
    )))
    .fetch_one(&pool)
    .await
    .expect("audit")
    .get(0);
    assert!(by_b > 0, "relay-b drained after the take-over");
    assert_eq!(store.dead_letters(10).await.expect("dead").len(), 0);

    let expected = ids.len();
    let records: Vec<Received> = tokio::task::spawn_blocking(move || {
        common::consume(&bootstrap, "orders", 4, expected, Duration::from_secs(120))
    })
    .await
    .expect("consumer");
    let got: HashSet<Uuid> = records.iter().map(Received::ce_id).collect();
    assert_eq!(
        got,
        ids.iter().copied().collect::<HashSet<_>>(),
        "nothing lost"
    );
    let position: HashMap<Uuid, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    for (key, seen) in common::first_occurrences_by_key(&records) {
        let positions: Vec<usize> = seen.iter().map(|id| position[id]).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "key {} out of order",
            String::from_utf8_lossy(&key)
        );
    }
}

/// A relay restarted under the same `instance_id` (SIGKILL, so the lease was not released)
/// takes its lease back at once, well before the lease would expire, as a new generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_relay_takes_its_own_lease_back_at_once() {
    let dir = tempfile::tempdir().expect("dir");
    let (pool, url) = common::sqlite(&dir).await;
    let kafka = common::cluster(1, "orders", 1);
    let names = common::fresh_names();
    let prefix = names.name(Table::Events).to_string();
    let prefix = prefix.trim_end_matches("_events").to_owned();
    let file = dir.path().join("relay.toml");
    std::fs::write(
        &file,
        format!(
            "database_url = \"{url}\"\ntable_prefix = \"{prefix}\"\n[kafka]\nbootstrap_servers = \"{}\"\n\
             [relay]\ninstance_id = \"same\"\npoll_interval = \"20ms\"\nlease_ttl = \"1h\"\n\
             [http]\nlisten = \"\"\n[registry]\nlisten = \"\"\n",
            kafka.bootstrap_servers()
        ),
    )
    .expect("config");
    let config = common::config(&url, &kafka.bootstrap_servers(), &names, "");
    let store = config.relay_store(pool.clone()).expect("store");
    let leases = names.qualified(outbox_core::table::Dialect::Sqlite, Table::Leases);
    let token = async || -> Option<i64> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT fencing_token FROM {leases}"
        )))
        .fetch_optional(&pool)
        .await
        .ok()
        .flatten()
        .map(|row| row.get(0))
    };
    let mut first = common::spawn_relay(&file);
    let deadline = Instant::now() + Duration::from_secs(30);
    while store
        .status("outbox-relay")
        .await
        .map(|s| s.leader)
        .ok()
        .flatten()
        .is_none()
    {
        assert!(Instant::now() < deadline, "the first relay did not lead");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = token().await.expect("a generation");
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    let mut second = common::spawn_relay(&file);
    // The lease lasts an hour: only taking it back can make the second relay lead.
    let deadline = Instant::now() + Duration::from_secs(30);
    while token().await == Some(before) {
        assert!(
            Instant::now() < deadline,
            "the restarted relay did not take its lease back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(token().await > Some(before), "a new generation");
    let outbox = common::order_outbox(&pool, &names).await;
    let mut tx = pool.begin().await.expect("begin");
    let id = outbox
        .publish(&mut *tx, &order(1, 1))
        .await
        .expect("publish");
    tx.commit().await.expect("commit");
    let bootstrap = kafka.bootstrap_servers();
    let records = tokio::task::spawn_blocking(move || {
        common::consume(&bootstrap, "orders", 1, 1, Duration::from_secs(30))
    })
    .await
    .expect("consumer");
    assert_eq!(
        records.iter().map(Received::ce_id).collect::<Vec<_>>(),
        [id]
    );
    signal(&second, "TERM");
    assert_eq!(second.wait().expect("exit").code(), Some(0));
}
