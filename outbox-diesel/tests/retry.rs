//! One retry classification per database, whichever writer reports the failure: the same
//! server failure through sqlx (`SqlxPool`) and through diesel (`DieselPool`) is retryable
//! (or permanent) alike, because both classify with `outbox_core::table::Dialect::is_retryable`.

use diesel::{Connection, RunQueryDsl};
use outbox_core::Error;
use outbox_core::sql::{SqlConnection, SqlPool, Statement};
use outbox_diesel::{DieselPool, OutboxConnection};
use outbox_sqlx::{OutboxDatabase, SqlxPool};

fn url(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// `statement` through diesel's adapter on `conn`.
fn through_diesel<C: OutboxConnection>(conn: &mut C, statement: &Statement) -> Error {
    let pool = DieselPool::new(conn);
    futures_executor::block_on(async {
        let mut conn = pool.acquire().await.expect("connection");
        conn.execute("retry test", statement, vec![])
            .await
            .expect_err("the statement fails")
    })
}

/// `statement` through sqlx's adapter on `pool`.
async fn through_sqlx<DB: OutboxDatabase>(pool: sqlx::Pool<DB>, statement: &Statement) -> Error {
    let pool = SqlxPool::from(pool);
    let mut conn = pool.acquire().await.expect("connection");
    conn.execute("retry test", statement, vec![])
        .await
        .expect_err("the statement fails")
}

fn assert_same(sqlx: &Error, diesel: &Error, retryable: bool, what: &str) {
    assert!(
        matches!(sqlx, Error::Store { .. }) && matches!(diesel, Error::Store { .. }),
        "{what}: {sqlx:?} / {diesel:?}"
    );
    assert_eq!(
        sqlx.is_retryable(),
        retryable,
        "{what} through sqlx: {sqlx:?}"
    );
    assert_eq!(
        diesel.is_retryable(),
        retryable,
        "{what} through diesel: {diesel:?}"
    );
    assert_eq!(sqlx.kind(), diesel.kind(), "{what}");
}

/// PostgreSQL: a deadlock (40P01) and a serialization failure (40001), raised by the server
/// with its own messages, are retryable through both; a syntax error (42601) through neither.
#[test]
fn postgres_failures_classify_alike() {
    let url = url(
        "OUTBOX_TEST_PG_URL",
        "postgres://postgres@localhost:5432/test",
    );
    let mut diesel = diesel::PgConnection::establish(&url).expect("diesel connects");
    let rt = runtime();
    let pool = rt
        .block_on(sqlx::PgPool::connect(&url))
        .expect("sqlx connects");
    let raise = |code: &str, message: &str| {
        Statement::new(format!(
            "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '{code}', MESSAGE = '{message}'; END $$"
        ))
    };
    for (statement, retryable, what) in [
        (raise("40P01", "deadlock detected"), true, "deadlock"),
        (
            raise(
                "40001",
                "could not serialize access due to concurrent update",
            ),
            true,
            "serialization failure",
        ),
        (Statement::new("SELEC 1"), false, "syntax error"),
    ] {
        let sqlx = rt.block_on(through_sqlx(pool.clone(), &statement));
        let diesel = through_diesel(&mut diesel, &statement);
        assert_same(&sqlx, &diesel, retryable, what);
    }
}

/// MySQL/MariaDB: a real lock wait timeout (1205) on a row another transaction holds is
/// retryable through both; a duplicate table (1050) through neither.
#[test]
fn mariadb_failures_classify_alike() {
    let url = url("OUTBOX_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test");
    let table = format!("retry_{}", uuid::Uuid::now_v7().simple());
    let mut holder = diesel::MysqlConnection::establish(&url).expect("diesel connects");
    let mut diesel = diesel::MysqlConnection::establish(&url).expect("diesel connects");
    let rt = runtime();
    let pool = rt
        .block_on(
            sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(1)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::Executor::execute(conn, "SET SESSION innodb_lock_wait_timeout = 1")
                            .await
                            .map(drop)
                    })
                })
                .connect(&url),
        )
        .expect("sqlx connects");
    let run = |conn: &mut diesel::MysqlConnection, sql: &str| {
        diesel::sql_query(sql).execute(conn).expect(sql);
    };
    run(
        &mut holder,
        &format!("CREATE TABLE {table} (id INT PRIMARY KEY, v INT NOT NULL)"),
    );
    run(&mut holder, &format!("INSERT INTO {table} VALUES (1, 0)"));
    run(&mut diesel, "SET SESSION innodb_lock_wait_timeout = 1");
    run(&mut holder, "BEGIN");
    run(
        &mut holder,
        &format!("UPDATE {table} SET v = 1 WHERE id = 1"),
    );
    let update = Statement::new(format!("UPDATE {table} SET v = 2 WHERE id = 1"));
    let sqlx = rt.block_on(through_sqlx(pool.clone(), &update));
    let diesel_error = through_diesel(&mut diesel, &update);
    assert_same(&sqlx, &diesel_error, true, "lock wait timeout");
    assert!(sqlx.to_string().contains("Lock wait timeout"), "{sqlx}");
    run(&mut holder, "ROLLBACK");
    let create = Statement::new(format!("CREATE TABLE {table} (id INT)"));
    let sqlx = rt.block_on(through_sqlx(pool, &create));
    let diesel_error = through_diesel(&mut diesel, &create);
    assert_same(&sqlx, &diesel_error, false, "table exists");
    run(&mut holder, &format!("DROP TABLE {table}"));
}

/// SQLite: a write while another connection holds the write lock fails BUSY ("database is
/// locked") and is retryable through both; a missing table through neither.
#[test]
fn sqlite_failures_classify_alike() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("busy.db").display().to_string();
    let mut holder = diesel::SqliteConnection::establish(&path).expect("diesel connects");
    let mut diesel = diesel::SqliteConnection::establish(&path).expect("diesel connects");
    let run = |conn: &mut diesel::SqliteConnection, sql: &str| {
        diesel::sql_query(sql).execute(conn).expect(sql);
    };
    run(&mut holder, "CREATE TABLE t (id INTEGER PRIMARY KEY)");
    run(&mut diesel, "PRAGMA busy_timeout = 0");
    let rt = runtime();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .busy_timeout(std::time::Duration::ZERO);
    let pool = rt
        .block_on(sqlx::SqlitePool::connect_with(options))
        .expect("sqlx connects");
    run(&mut holder, "BEGIN IMMEDIATE");
    let insert = Statement::new("INSERT INTO t (id) VALUES (1)");
    let sqlx = rt.block_on(through_sqlx(pool.clone(), &insert));
    let diesel_error = through_diesel(&mut diesel, &insert);
    assert_same(&sqlx, &diesel_error, true, "busy");
    run(&mut holder, "ROLLBACK");
    let missing = Statement::new("INSERT INTO missing (id) VALUES (1)");
    let sqlx = rt.block_on(through_sqlx(pool, &missing));
    let diesel_error = through_diesel(&mut diesel, &missing);
    assert_same(&sqlx, &diesel_error, false, "missing table");
}
