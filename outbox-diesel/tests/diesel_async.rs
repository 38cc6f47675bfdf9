//! outbox-diesel's `async` feature on PostgreSQL and MariaDB: atomic with the caller's
//! `diesel-async` transaction, bad input refused with nothing written and the transaction still
//! usable, rows identical column by column to sqlx's and blocking diesel's (one relay drains
//! all three), and a failed start-up that leaves no transaction open on the caller's connection.

mod common;

use std::sync::Arc;

use common::*;
use diesel::result::Error as DieselError;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{
    AnsiTransactionManager, AsyncMysqlConnection, AsyncPgConnection, TransactionManager,
};
use outbox_core::Error;
use outbox_core::relay::RelayStoreExt;
use outbox_core::table::{Dialect, Table, TableNames};
use outbox_diesel::{
    AsyncDieselOutbox, AsyncOutboxConnection, DieselBackend, DieselOutbox, OutboxConnection,
};
use outbox_sqlx::{OutboxDatabase, SqlxRelayStore};
use uuid::Uuid;

async fn outbox<C: AsyncOutboxConnection>(
    conn: &mut C,
    names: &TableNames,
) -> AsyncDieselOutbox<C::Backend> {
    AsyncDieselOutbox::builder()
        .table_names(names.clone())
        .register::<OrderPlaced>()
        .register::<Mismatched>()
        .build(conn)
        .await
        .expect("async diesel outbox builds")
}

async fn count<C: AsyncOutboxConnection>(conn: &mut C, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) AS value FROM {table}");
    conn.load_rows::<i64>(&sql, vec![]).await.expect("count")[0]
}

fn events_table<C: AsyncOutboxConnection>(names: &TableNames) -> String {
    names.qualified(<C::Backend as DieselBackend>::DIALECT, Table::Events)
}

/// Rollback leaves no event; bad input writes nothing and the same transaction then runs a
/// business statement and commits it with the valid events.
async fn atomic_and_refuses_bad_input<C: AsyncOutboxConnection>(conn: &mut C) {
    let names = names();
    let events = events_table::<C>(&names);
    let orders = format!("o{}", &Uuid::now_v7().simple().to_string()[20..]);
    conn.run(&format!("CREATE TABLE {orders} (id VARCHAR(64))"), vec![])
        .await
        .expect("orders table");
    let outbox = outbox(conn, &names).await;
    let rolled_back = conn
        .transaction::<(), DieselError, _>(async |conn| {
            outbox.publish(conn, &order(1)).await.expect("publish");
            outbox
                .publish_all(conn, &[order(2), order(3)])
                .await
                .expect("publish all");
            assert_eq!(count(conn, &events).await, 3, "visible inside");
            Err(DieselError::RollbackTransaction)
        })
        .await;
    assert!(rolled_back.is_err());
    assert_eq!(count(conn, &events).await, 0, "rollback leaves no event");

    let published = conn
        .transaction::<_, DieselError, _>(async |conn| {
            let mut ids = vec![outbox.publish(conn, &order(4)).await.expect("publish")];
            match outbox.publish(conn, &Mismatched { order_id: 5 }).await {
                Err(Error::SchemaViolation { path, .. }) => assert_eq!(path, "order_id"),
                other => panic!("expected SchemaViolation, got {other:?}"),
            }
            let unregistered = outbox.publish(conn, &Unregistered { id: "x".into() }).await;
            assert!(
                matches!(unregistered, Err(Error::UnregisteredEvent { .. })),
                "{unregistered:?}"
            );
            let mut big = order(6);
            big.tags.insert("blob".into(), "x".repeat(2 * 1024 * 1024));
            let too_large = outbox.publish_all(conn, &[order(7), big]).await;
            assert!(
                matches!(too_large, Err(Error::PayloadTooLarge { .. })),
                "{too_large:?}"
            );
            // The transaction is still usable: the business write and more events.
            conn.run(&format!("INSERT INTO {orders} (id) VALUES ('o-9')"), vec![])
                .await?;
            ids.extend(
                outbox
                    .publish_all(conn, &[order(8), order(9)])
                    .await
                    .expect("publish all"),
            );
            Ok(ids)
        })
        .await
        .expect("commit");
    assert_eq!(published.len(), 3);
    assert_eq!(count(conn, &events).await, 3, "the committed, valid events");
    assert_eq!(count(conn, &orders).await, 1, "the business row committed");
    let select = format!("SELECT CAST(event_id AS CHAR(36)) AS value FROM {events} ORDER BY id");
    let stored = conn
        .load_rows::<String>(&select, vec![])
        .await
        .expect("ids");
    let committed: Vec<String> = published.iter().map(Uuid::to_string).collect();
    assert_eq!(stored, committed, "the committed events, in publish order");
}

#[tokio::test]
async fn async_is_atomic_and_refuses_bad_input_on_postgres() {
    let Some(mut conn) = establish_async::<AsyncPgConnection>(&pg_url()).await else {
        return;
    };
    atomic_and_refuses_bad_input(&mut conn).await;
}

#[tokio::test]
async fn async_is_atomic_and_refuses_bad_input_on_mariadb() {
    let Some(mut conn) = establish_async::<AsyncMysqlConnection>(&mysql_url()).await else {
        return;
    };
    atomic_and_refuses_bad_input(&mut conn).await;
}

/// The same event through sqlx, blocking diesel and async diesel (on a bb8 pool, in a
/// spawned task): identical columns but ids and timestamps; one relay drains the three rows
/// to Kafka and a consumer decodes each.
async fn three_writers_one_relay<A, S, DB>(async_conn: A, sync_conn: S, pool: sqlx::Pool<DB>)
where
    A: AsyncOutboxConnection + 'static,
    S: OutboxConnection<Backend = A::Backend> + 'static,
    DB: OutboxDatabase,
{
    let names = names();
    let sqlx_outbox = outbox_sqlx::Outbox::builder(pool.clone())
        .table_names(names.clone())
        .register::<OrderPlaced>()
        .register::<Mismatched>()
        .build()
        .await
        .expect("sqlx outbox");
    let event = order(42);

    let mut tx = pool.begin().await.expect("begin");
    let via_sqlx = sqlx_outbox
        .publish(&mut *tx, &event)
        .await
        .expect("publish");
    tx.commit().await.expect("commit");

    let (sync_names, sync_event) = (names.clone(), event.clone());
    let via_diesel = tokio::task::spawn_blocking(move || {
        let mut conn = sync_conn;
        let outbox = DieselOutbox::<S::Backend>::builder()
            .table_names(sync_names)
            .register::<OrderPlaced>()
            .register::<Mismatched>()
            .build(&mut conn)
            .expect("diesel outbox");
        conn.transaction::<_, DieselError, _>(|conn| {
            Ok(outbox.publish(conn, &sync_event).expect("publish"))
        })
        .expect("commit")
    })
    .await
    .expect("blocking writer");

    let (async_names, async_event) = (names.clone(), event.clone());
    let via_async = tokio::spawn(async move {
        let mut conn = async_conn;
        let outbox = outbox(&mut conn, &async_names).await;
        conn.transaction::<_, DieselError, _>(async |conn| {
            Ok(outbox.publish(conn, &async_event).await.expect("publish"))
        })
        .await
        .expect("commit")
    })
    .await
    .expect("async writer");

    let store = SqlxRelayStore::new(pool.clone(), Arc::new(sqlx_outbox.statements().clone()))
        .with_strict_order(false);
    let rows = store.read_batch(10).await.expect("read");
    let ids: Vec<Uuid> = rows.iter().map(|r| r.event_id).collect();
    assert_eq!(
        ids,
        [via_sqlx, via_diesel, via_async],
        "one row each, in order"
    );
    assert_same_columns(&rows[0], &rows[1]);
    assert_same_columns(&rows[0], &rows[2]);
    drain_and_read_back(store, &ids, &event).await;
}

/// A connection from a bb8 pool, as services hold them.
async fn bb8_connection<C>(
    url: String,
) -> bb8::PooledConnection<'static, AsyncDieselConnectionManager<C>>
where
    C: diesel_async::pooled_connection::PoolableConnection + 'static,
    for<'a> diesel::dsl::select<diesel::dsl::AsExprOf<i32, diesel::sql_types::Integer>>:
        diesel_async::methods::LoadQuery<'a, C, i32>,
    diesel::query_builder::SqlQuery: diesel::query_builder::QueryFragment<C::Backend>,
{
    bb8::Pool::builder()
        .max_size(1)
        .build(AsyncDieselConnectionManager::<C>::new(url))
        .await
        .expect("bb8 pool")
        .get_owned()
        .await
        .expect("pooled connection")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_writers_one_relay_on_postgres() {
    let Some(sync_conn) = establish::<diesel::PgConnection>(&pg_url()) else {
        return;
    };
    let pool = sqlx::PgPool::connect(&pg_url()).await.expect("pool");
    let pooled = bb8_connection::<AsyncPgConnection>(pg_url()).await;
    three_writers_one_relay(pooled, sync_conn, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_writers_one_relay_on_mariadb() {
    let Some(sync_conn) = establish::<diesel::MysqlConnection>(&mysql_url()) else {
        return;
    };
    let pool = sqlx::MySqlPool::connect(&mysql_url()).await.expect("pool");
    let pooled = bb8_connection::<AsyncMysqlConnection>(mysql_url()).await;
    three_writers_one_relay(pooled, sync_conn, pool).await;
}

/// A start-up whose registration fails inside its own transaction (the schema id vanishes
/// after its insert, as under a concurrent writer) reports the conflict, registers nothing
/// and hands the connection back with no transaction open: the rollback `Drop` could not
/// await has run.
#[tokio::test]
async fn failed_start_up_leaves_no_transaction_open_on_postgres() {
    let Some(mut conn) = establish_async::<AsyncPgConnection>(&pg_url()).await else {
        return;
    };
    let names = names();
    AsyncDieselOutbox::<diesel::pg::Pg>::builder()
        .table_names(names.clone())
        .build(&mut conn)
        .await
        .expect("migrates");
    let ids = names.qualified(Dialect::Postgres, Table::SchemaIds);
    let function = format!("{}_vanish", names.name(Table::SchemaIds));
    conn.run(
        &format!(
            "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN DELETE FROM {ids} WHERE id = NEW.id; RETURN NULL; END $$"
        ),
        vec![],
    )
    .await
    .expect("function");
    conn.run(
        &format!(
            "CREATE TRIGGER vanish AFTER INSERT ON {ids} FOR EACH ROW EXECUTE FUNCTION {function}()"
        ),
        vec![],
    )
    .await
    .expect("trigger");
    let err = AsyncDieselOutbox::<diesel::pg::Pg>::builder()
        .table_names(names.clone())
        .register::<OrderPlaced>()
        .build(&mut conn)
        .await
        .expect_err("no id to register under");
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    let depth = AnsiTransactionManager::transaction_manager_status_mut(&mut conn)
        .transaction_depth()
        .expect("a usable transaction manager");
    assert_eq!(depth, None, "no transaction left open");
    let schemas = names.qualified(Dialect::Postgres, Table::Schemas);
    assert_eq!(count(&mut conn, &schemas).await, 0, "nothing registered");
}
