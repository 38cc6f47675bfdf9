//! The inbox across processes: the example's `inbox consume` started, SIGKILLed mid-batch and
//! restarted, or joined by a second consumer of the same group (a rebalance), on PostgreSQL with
//! the relay upstream on the test broker. Each order must be shipped exactly once.

#[allow(dead_code)]
#[path = "../../../outbox-sqlx/tests/inbox_support/upstream.rs"]
mod upstream;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use upstream::{HOSTILE, N, Scenario};

fn pg_url() -> String {
    std::env::var("OUTBOX_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@localhost:5432/test".into())
}

fn consumer(scenario: &Scenario, delay_ms: u64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_inbox"))
        .arg("consume")
        .env("INBOX_DATABASE_URL", pg_url())
        .env("KAFKA_BOOTSTRAP_SERVERS", &scenario.bootstrap)
        .env("INBOX_TOPIC", &scenario.topic)
        .env("INBOX_GROUP", format!("g-{}", scenario.id))
        .env("INBOX_TABLE_PREFIX", scenario.prefix())
        .env("INBOX_REGISTRY_DB", scenario.upstream_db())
        .env("INBOX_HANDLER_DELAY_MS", delay_ms.to_string())
        // A killed member's partitions move after its session times out: keep that short.
        .env(
            "INBOX_KAFKA_PROPERTIES",
            "session.timeout.ms=6000,heartbeat.interval.ms=1000",
        )
        .spawn()
        .expect("start the consumer")
}

/// `(shipments, distinct ce_ids shipped, dead letters)`, zeros before the tables exist.
async fn counts(pool: &sqlx::PgPool, prefix: &str) -> (i64, i64, i64) {
    let q = |sql: String| async move {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .unwrap_or(0)
    };
    (
        q(format!("SELECT COUNT(*) FROM {prefix}_inbox_shipments")).await,
        q(format!(
            "SELECT COUNT(DISTINCT ce_id) FROM {prefix}_inbox_shipments"
        ))
        .await,
        q(format!("SELECT COUNT(*) FROM {prefix}_inbox_dead_letters")).await,
    )
}

async fn wait_for(
    pool: &sqlx::PgPool,
    prefix: &str,
    what: &str,
    done: impl Fn((i64, i64, i64)) -> bool,
) -> (i64, i64, i64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let c = counts(pool, prefix).await;
        if done(c) {
            return c;
        }
        assert!(Instant::now() < deadline, "waiting for {what}: {c:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn terminate(mut child: Child) {
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    let status = child.wait().expect("wait");
    assert!(
        status.success(),
        "the consumer exits 0 on SIGTERM: {status}"
    );
}

/// Every order shipped once, the hostile records dead-lettered; then the tables go.
async fn shipped_exactly_once(pool: &sqlx::PgPool, prefix: &str) {
    let (shipped, distinct, dead) = counts(pool, prefix).await;
    assert_eq!(
        (shipped, distinct, dead),
        (N as i64, N as i64, HOSTILE as i64),
        "each order shipped exactly once"
    );
    drop_tables(pool, prefix).await;
}

async fn drop_tables(pool: &sqlx::PgPool, prefix: &str) {
    for table in [
        "inbox_shipments",
        "inbox",
        "inbox_dead_letters",
        "migrations",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {prefix}_{table}"
        )))
        .execute(pool)
        .await
        .expect("drop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_killed_mid_batch_resumes_without_a_double_effect() {
    let Some(scenario) = Scenario::prepare().await else {
        return;
    };
    let pool = sqlx::PgPool::connect(&pg_url()).await.expect("postgres");
    let prefix = scenario.prefix();
    let mut first = consumer(&scenario, 150);
    let (at_kill, _, _) = wait_for(&pool, &prefix, "a first shipment", |(n, _, _)| n >= 2).await;
    first.kill().expect("SIGKILL");
    first.wait().expect("reap");
    let (after_kill, _, _) = counts(&pool, &prefix).await;
    assert!(
        after_kill < N as i64,
        "killed mid-batch: {after_kill} of {N} shipped (at least {at_kill})"
    );
    let second = consumer(&scenario, 0);
    wait_for(&pool, &prefix, "every record handled", |(n, _, dead)| {
        n >= N as i64 && dead >= HOSTILE as i64
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    terminate(second);
    shipped_exactly_once(&pool, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebalance_between_two_consumers_processes_nothing_twice() {
    let Some(scenario) = Scenario::prepare().await else {
        return;
    };
    let pool = sqlx::PgPool::connect(&pg_url()).await.expect("postgres");
    let prefix = scenario.prefix();
    let first = consumer(&scenario, 100);
    wait_for(&pool, &prefix, "a first shipment", |(n, _, _)| n >= 2).await;
    let second = consumer(&scenario, 100);
    wait_for(&pool, &prefix, "every record handled", |(n, _, dead)| {
        n >= N as i64 && dead >= HOSTILE as i64
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    terminate(first);
    terminate(second);
    shipped_exactly_once(&pool, &prefix).await;
}
