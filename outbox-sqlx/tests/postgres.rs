//! outbox-sqlx on PostgreSQL (`OUTBOX_TEST_PG_URL`, default the local `test` database).

#[macro_use]
mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outbox_core::relay::{RelayStore, RelayStoreExt};
use sqlx::Postgres;
use tokio::sync::Notify;

async fn pool() -> Option<sqlx::Pool<Postgres>> {
    common::connect::<Postgres>(&common::url(
        "OUTBOX_TEST_PG_URL",
        "postgres://postgres@localhost:5432/test",
    ))
    .await
}

shared_suite!(pg);
capture_suite!(pg);
liberate_suite!(pg);
shared_suite!(pg: liberate_bulk_under_live_capture);

async fn pg() -> Option<((), sqlx::Pool<Postgres>)> {
    pool().await.map(|p| ((), p))
}

/// Strict order: a row whose transaction is still open holds back every later row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strict_order_waits_for_an_earlier_open_transaction() {
    let Some(pool) = pool().await else { return };
    let names = common::fresh_names();
    let outbox = common::outbox(&pool, &names).await;
    let strict = outbox.relay_store();
    let relaxed = outbox.relay_store().with_strict_order(false);

    let mut early = pool.begin().await.expect("begin");
    let early_id = outbox
        .publish(&mut *early, &common::order(1))
        .await
        .expect("publish");
    let mut tx = pool.begin().await.expect("begin");
    let late_id = outbox
        .publish(&mut *tx, &common::order(2))
        .await
        .expect("publish");
    tx.commit().await.expect("commit");

    assert!(
        strict.read_batch(10).await.expect("claim").is_empty(),
        "strict order must not pass the open transaction's row"
    );
    let relaxed_rows = relaxed.read_batch(10).await.expect("claim");
    assert_eq!(
        relaxed_rows.iter().map(|r| r.event_id).collect::<Vec<_>>(),
        [late_id]
    );

    early.commit().await.expect("commit");
    let rows = claim_until(&strict, 2).await;
    assert_eq!(
        rows.iter().map(|r| r.event_id).collect::<Vec<_>>(),
        [early_id, late_id],
        "once it commits, both come in id order"
    );
    common::drop_tables(&pool, &names).await;
}

async fn claim_until(store: &impl RelayStore, n: usize) -> Vec<outbox_core::relay::OutboxRecord> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = store.read_batch(n).await.expect("claim");
        if rows.len() >= n || Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// 16 writers, some holding their transactions open while later ones commit, some rolling
/// back; a drainer claims and acknowledges all along. In strict order it publishes ids in
/// increasing order only (never passing a row still in flight) and, at the end, exactly the
/// committed events.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_writers_with_open_transactions_drain_in_order_without_loss() {
    let Some(pool) = pool().await else { return };
    let names = common::fresh_names();
    let outbox = common::outbox(&pool, &names).await;
    let store = outbox.relay_store();
    let done = Arc::new(Notify::new());

    let writers: Vec<_> = (0..16)
        .map(|w| {
            let (pool, outbox) = (pool.clone(), outbox.clone());
            tokio::spawn(async move {
                let mut committed = Vec::new();
                for i in 0..25 {
                    let mut tx = pool.begin().await.expect("begin");
                    let id = outbox
                        .publish(&mut *tx, &common::order(w * 1000 + i))
                        .await
                        .expect("publish");
                    if (w + i) % 5 == 0 {
                        // Hold the transaction open while others commit.
                        tokio::time::sleep(Duration::from_millis(30 + (w as u64 * 7) % 90)).await;
                    }
                    if (w + i) % 7 == 3 {
                        tx.rollback().await.expect("rollback");
                    } else {
                        tx.commit().await.expect("commit");
                        committed.push(id);
                    }
                }
                committed
            })
        })
        .collect();

    let drainer = {
        let (store, done) = (store.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut published = Vec::new();
            let mut last_id = 0;
            let mut finished = false;
            loop {
                let batch = store.read_batch(200).await.expect("claim");
                for row in &batch {
                    assert!(
                        row.id > last_id,
                        "row {} published after row {last_id}",
                        row.id
                    );
                    last_id = row.id;
                }
                if !batch.is_empty() {
                    let ids: Vec<i64> = batch.iter().map(|r| r.id).collect();
                    store.ack(&ids, None).await.expect("ack");
                    published.extend(batch.into_iter().map(|r| r.event_id));
                    continue;
                }
                if finished {
                    return published;
                }
                tokio::select! {
                    () = done.notified() => finished = true,
                    () = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            }
        })
    };

    let mut committed = HashSet::new();
    for writer in writers {
        committed.extend(writer.await.expect("writer"));
    }
    // Let the drainer see the horizon settle after the last commit, then stop it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    done.notify_one();
    let published = drainer.await.expect("drainer");
    let published_set: HashSet<_> = published.iter().copied().collect();
    assert_eq!(published.len(), published_set.len(), "no duplicates");
    assert_eq!(published_set, committed, "exactly the committed events");
    assert!(
        committed.len() > 300,
        "most transactions committed: {}",
        committed.len()
    );
    common::drop_tables(&pool, &names).await;
}

/// Strict order must not burn transaction ids: an idle relay polls without assigning any, and
/// a relay held back by an open transaction assigns at most one while it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strict_order_assigns_no_transaction_ids_while_idle() {
    let Some(pool) = pool().await else { return };
    let names = common::fresh_names();
    let outbox = common::outbox(&pool, &names).await;
    let strict = outbox.relay_store();

    common::publish_committed(&pool, &outbox, 1).await;
    let rows = claim_until(&strict, 1).await;
    assert_eq!(rows.len(), 1);
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    strict.ack(&ids, None).await.expect("ack");
    let after_first = strict.xids_assigned();
    assert!(after_first >= 1, "the first event needs one observation");

    for _ in 0..200 {
        assert!(strict.read_batch(10).await.expect("claim").is_empty());
    }
    assert_eq!(
        strict.xids_assigned(),
        after_first,
        "200 claims of an idle outbox assigned transaction ids"
    );

    // An open transaction holding an id: the relay waits, with one observation pending.
    let mut open = pool.begin().await.expect("begin");
    let held = outbox
        .publish(&mut *open, &common::order(2))
        .await
        .expect("publish");
    for _ in 0..100 {
        assert!(strict.read_batch(10).await.expect("claim").is_empty());
    }
    assert!(
        strict.xids_assigned() <= after_first + 1,
        "waiting for one open transaction assigned {} transaction ids",
        strict.xids_assigned() - after_first
    );
    open.commit().await.expect("commit");
    let rows = claim_until(&strict, 1).await;
    assert_eq!(rows.iter().map(|r| r.event_id).collect::<Vec<_>>(), [held]);
    common::drop_tables(&pool, &names).await;
}

/// The statements the horizon runs on every claim (last id drawn, oldest running xid) are
/// reads that assign no transaction id; only the observation's fresh xid does.
#[tokio::test]
async fn horizon_reads_assign_no_transaction_id() {
    let Some(pool) = pool().await else { return };
    let names = common::fresh_names();
    let _outbox = common::outbox(&pool, &names).await;
    let stmts = outbox_core::table::Statements::new(outbox_core::table::Dialect::Postgres, &names);
    let stmts = stmts
        .relay
        .strict_order
        .expect("PostgreSQL reads in strict order");
    let mut tx = pool.begin().await.expect("begin");
    for sql in [&stmts.select_last_id, &stmts.select_xmin] {
        sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .execute(&mut *tx)
            .await
            .expect(sql);
    }
    let assigned: Option<String> =
        sqlx::query_scalar("SELECT CAST(pg_current_xact_id_if_assigned() AS TEXT)")
            .fetch_one(&mut *tx)
            .await
            .expect("xid if assigned");
    assert_eq!(assigned, None, "a horizon read assigned a transaction id");
    sqlx::query(sqlx::AssertSqlSafe(stmts.select_new_xid.as_str()))
        .execute(&mut *tx)
        .await
        .expect("new xid");
    let assigned: Option<String> =
        sqlx::query_scalar("SELECT CAST(pg_current_xact_id_if_assigned() AS TEXT)")
            .fetch_one(&mut *tx)
            .await
            .expect("xid if assigned");
    assert!(assigned.is_some(), "the observation's xid is a real one");
    tx.rollback().await.expect("rollback");
    common::drop_tables(&pool, &names).await;
}

/// DDL that bypasses `capture migrate` is refused by the event trigger; the same DDL through
/// `capture migrate` goes through; the guard goes with the last capture.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ddl_bypassing_capture_migrate_is_refused() {
    let Some(pool) = pool().await else { return };
    let mut fx = common::capture::Fixture::new(&pool).await;
    let t = fx.table("guarded");
    fx.exec(&format!("CREATE TABLE \"{t}\" (id BIGINT PRIMARY KEY)"))
        .await;
    fx.capture
        .add(&fx.registry, &outbox_core::capture::CaptureSpec::new(&t))
        .await
        .expect("capture");
    let mut conn = pool.acquire().await.expect("connection");
    let ddl = format!("ALTER TABLE \"{t}\" ADD COLUMN note TEXT");
    let err = <Postgres as outbox_sqlx::OutboxDatabase>::run(&mut conn, &ddl, vec![])
        .await
        .expect_err("bypassing DDL is refused");
    assert!(err.to_string().contains("capture migrate"), "{err}");
    drop(conn);
    fx.capture
        .migrate(&fx.registry, &t, &ddl)
        .await
        .expect("through capture migrate");
    let guard = fx
        .names
        .name(outbox_core::table::Table::Events)
        .to_string()
        .replace("_events", "_capture_guard");
    let count = |pool: sqlx::PgPool, guard: String| async move {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM pg_event_trigger WHERE evtname = $1")
            .bind(guard)
            .fetch_one(&pool)
            .await
            .expect("count")
    };
    assert_eq!(count(pool.clone(), guard.clone()).await, 1);
    fx.capture.remove(&t).await.expect("remove");
    assert_eq!(
        count(pool.clone(), guard).await,
        0,
        "no capture left, no guard"
    );
    fx.cleanup().await;
}

/// The guard runs as its installer (SECURITY DEFINER, the installer's search_path): while a
/// capture is installed, a role that is not a superuser and has no right on the captures
/// table still creates and alters its own tables in its own schema, and its ALTER of a
/// captured table it owns is refused as bypassing `capture migrate`, not for lack of rights.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ddl_guard_lets_another_role_alter_its_own_tables() {
    use std::str::FromStr;

    let Some(pool) = pool().await else { return };
    let mut fx = common::capture::Fixture::new(&pool).await;
    let t = fx.table("owned");
    let role = format!("{t}_role");
    let schema = format!("{t}_own");
    for sql in [
        format!("CREATE ROLE \"{role}\" LOGIN PASSWORD 'pw' NOSUPERUSER"),
        format!("CREATE SCHEMA \"{schema}\" AUTHORIZATION \"{role}\""),
        format!("CREATE TABLE \"{t}\" (id BIGINT PRIMARY KEY)"),
        format!("ALTER TABLE \"{t}\" OWNER TO \"{role}\""),
    ] {
        fx.exec(&sql).await;
    }
    fx.capture
        .add(&fx.registry, &outbox_core::capture::CaptureSpec::new(&t))
        .await
        .expect("capture");
    let url = common::url(
        "OUTBOX_TEST_PG_URL",
        "postgres://postgres@localhost:5432/test",
    );
    let options = sqlx::postgres::PgConnectOptions::from_str(&url)
        .expect("url")
        .username(&role)
        .password("pw");
    let theirs = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("connect as the role");
    let superuser: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&theirs)
            .await
            .expect("rolsuper");
    assert!(!superuser, "the role is not a superuser");
    for sql in [
        format!("CREATE TABLE \"{schema}\".mine (id INT PRIMARY KEY)"),
        format!("ALTER TABLE \"{schema}\".mine ADD COLUMN note TEXT"),
        format!("ALTER TABLE \"{schema}\".mine RENAME COLUMN note TO memo"),
        format!("ALTER TABLE \"{schema}\".mine ALTER COLUMN memo SET NOT NULL"),
    ] {
        let mut conn = theirs.acquire().await.expect("connection");
        <Postgres as outbox_sqlx::OutboxDatabase>::run(&mut conn, &sql, vec![])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let memo: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = $1 AND column_name = 'memo'",
    )
    .bind(&schema)
    .fetch_one(&theirs)
    .await
    .expect("columns");
    assert_eq!(memo, 1, "the role's DDL applied");
    let bypass = format!("ALTER TABLE public.\"{t}\" ADD COLUMN x TEXT");
    let mut conn = theirs.acquire().await.expect("connection");
    let err = <Postgres as outbox_sqlx::OutboxDatabase>::run(&mut conn, &bypass, vec![])
        .await
        .expect_err("the role's ALTER of a captured table is refused");
    drop(conn);
    assert!(
        err.to_string().contains("capture migrate") && !err.to_string().contains("permission"),
        "{err}"
    );
    theirs.close().await;
    fx.exec(&format!("DROP SCHEMA \"{schema}\" CASCADE")).await;
    fx.cleanup().await;
    let mut conn = pool.acquire().await.expect("connection");
    let drop_role = format!("DROP ROLE IF EXISTS \"{role}\"");
    <Postgres as outbox_sqlx::OutboxDatabase>::run(&mut conn, &drop_role, vec![])
        .await
        .expect("drop role");
}
