//! outbox-diesel on PostgreSQL, MariaDB and SQLite: atomicity, rows identical to
//! outbox-sqlx's, a relay draining diesel-written rows to Kafka, bad input, and the SQL
//! migration files kept equal to the table contract.

mod common;

use common::*;
use diesel::{Connection, MysqlConnection, PgConnection, SqliteConnection};
use outbox_core::Error;
use outbox_core::relay::RelayStoreExt;
use outbox_core::table::{Dialect, Table, TableNames, migrations};
use outbox_diesel::{DieselBackend, DieselOutbox, OutboxConnection};
use outbox_sqlx::{OutboxDatabase, SqlxRelayStore};
use uuid::Uuid;

fn outbox<C: OutboxConnection>(conn: &mut C, names: &TableNames) -> DieselOutbox<C::Backend> {
    DieselOutbox::builder()
        .table_names(names.clone())
        .register::<OrderPlaced>()
        .register::<Mismatched>()
        .build(conn)
        .expect("diesel outbox builds")
}

fn count<C: OutboxConnection>(conn: &mut C, names: &TableNames) -> i64 {
    let sql = format!(
        "SELECT COUNT(*) AS value FROM {}",
        names.qualified(<C::Backend as DieselBackend>::DIALECT, Table::Events)
    );
    conn.load_rows::<i64>(&sql, vec![]).expect("count")[0]
}

/// Rollback leaves nothing; commit leaves exactly the published rows; bad input writes
/// nothing and leaves the transaction usable.
fn atomic_and_refuses_bad_input<C: OutboxConnection>(conn: &mut C) {
    let names = names();
    let outbox = outbox(conn, &names);
    let rolled_back = conn.transaction::<(), diesel::result::Error, _>(|conn| {
        outbox.publish(conn, &order(1)).expect("publish");
        outbox
            .publish_all(conn, &[order(2), order(3)])
            .expect("publish all");
        Err(diesel::result::Error::RollbackTransaction)
    });
    assert!(rolled_back.is_err());
    assert_eq!(count(conn, &names), 0, "rollback leaves no row");

    let published = conn
        .transaction::<_, diesel::result::Error, _>(|conn| {
            let mut ids = vec![outbox.publish(conn, &order(4)).expect("publish")];
            match outbox.publish(conn, &Mismatched { order_id: 5 }) {
                Err(Error::SchemaViolation { path, .. }) => assert_eq!(path, "order_id"),
                other => panic!("expected SchemaViolation, got {other:?}"),
            }
            assert!(matches!(
                outbox.publish(conn, &Unregistered { id: "x".into() }),
                Err(Error::UnregisteredEvent { .. })
            ));
            let mut big = order(6);
            big.tags.insert("blob".into(), "x".repeat(2 * 1024 * 1024));
            assert!(matches!(
                outbox.publish_all(conn, &[order(7), big]),
                Err(Error::PayloadTooLarge { .. })
            ));
            ids.extend(
                outbox
                    .publish_all(conn, &[order(8), order(9)])
                    .expect("publish all"),
            );
            Ok(ids)
        })
        .expect("commit");
    assert_eq!(published.len(), 3);
    assert_eq!(
        count(conn, &names),
        3,
        "exactly the committed, valid events"
    );
}

#[test]
fn diesel_is_atomic_and_refuses_bad_input_on_postgres() {
    let Some(mut conn) = establish::<PgConnection>(&pg_url()) else {
        return;
    };
    atomic_and_refuses_bad_input(&mut conn);
}

#[test]
fn diesel_is_atomic_and_refuses_bad_input_on_mariadb() {
    let Some(mut conn) = establish::<MysqlConnection>(&mysql_url()) else {
        return;
    };
    atomic_and_refuses_bad_input(&mut conn);
}

/// The diesel builder runs the same linter at registration.
#[test]
fn diesel_lint_deny_fails_start_up() {
    use outbox_core::lint::{LintLevel, Rule};
    let dir = tempfile::tempdir().expect("temp dir");
    let url = dir.path().join("lint.db").display().to_string();
    let mut conn = SqliteConnection::establish(&url).expect("sqlite");
    let refused = DieselOutbox::builder()
        .table_names(names())
        .lint(LintLevel::Deny)
        .register::<OrderPlaced>()
        .build(&mut conn);
    match refused {
        Err(Error::LintFailed { violations, .. }) => {
            assert!(violations.iter().any(|v| v.rule == Rule::DocMissing));
        }
        other => panic!("expected LintFailed, got {other:?}"),
    }
    DieselOutbox::builder()
        .table_names(names())
        .lint(LintLevel::Warn)
        .register::<OrderPlaced>()
        .build(&mut conn)
        .expect("warn registers anyway");
}

#[test]
fn diesel_is_atomic_and_refuses_bad_input_on_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    let mut conn = SqliteConnection::establish(&dir.path().join("d.db").display().to_string())
        .expect("sqlite");
    atomic_and_refuses_bad_input(&mut conn);
}

/// The same event through diesel and through sqlx: identical columns (but ids and
/// timestamps); then the relay drains the diesel rows to Kafka and a consumer decodes them.
async fn identical_rows_and_drained<C, DB>(conn: &mut C, pool: sqlx::Pool<DB>)
where
    C: OutboxConnection,
    DB: OutboxDatabase,
{
    let names = names();
    let diesel_outbox = outbox(conn, &names);
    let sqlx_outbox = outbox_sqlx::Outbox::builder(pool.clone())
        .table_names(names.clone())
        .register::<OrderPlaced>()
        .register::<Mismatched>()
        .build()
        .await
        .expect("sqlx outbox");
    let event = order(42);
    let via_diesel = conn
        .transaction::<_, diesel::result::Error, _>(|conn| {
            Ok(diesel_outbox.publish(conn, &event).expect("publish"))
        })
        .expect("commit");
    let mut tx = pool.begin().await.expect("begin");
    let via_sqlx = sqlx_outbox
        .publish(&mut *tx, &event)
        .await
        .expect("publish");
    tx.commit().await.expect("commit");

    let store = SqlxRelayStore::new(
        pool.clone(),
        std::sync::Arc::new(sqlx_outbox.statements().clone()),
    )
    .with_strict_order(false);
    let rows = store.read_batch(10).await.expect("read");
    let ids: Vec<Uuid> = rows.iter().map(|r| r.event_id).collect();
    assert_eq!(ids, [via_diesel, via_sqlx]);
    assert_same_columns(&rows[0], &rows[1]);
    drain_and_read_back(store, &ids, &event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_rows_and_drained_on_postgres() {
    let Some(mut conn) = establish::<PgConnection>(&pg_url()) else {
        return;
    };
    let pool = sqlx::PgPool::connect(&pg_url()).await.expect("pool");
    identical_rows_and_drained(&mut conn, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_rows_and_drained_on_mariadb() {
    let Some(mut conn) = establish::<MysqlConnection>(&mysql_url()) else {
        return;
    };
    let pool = sqlx::MySqlPool::connect(&mysql_url()).await.expect("pool");
    identical_rows_and_drained(&mut conn, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_rows_and_drained_on_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("d.db");
    let mut conn = SqliteConnection::establish(&path.display().to_string()).expect("sqlite");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("pool");
    identical_rows_and_drained(&mut conn, pool).await;
}

/// The SQL files for the diesel CLI are the table contract's DDL, statement for statement,
/// one folder per migration version.
/// `OUTBOX_WRITE_MIGRATIONS=1 cargo test -p outbox-diesel --all-features` rewrites them.
#[test]
fn migration_files_match_the_table_contract() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for (dialect, dir) in [
        (Dialect::Postgres, "postgres"),
        (Dialect::MySql, "mysql"),
        (Dialect::Sqlite, "sqlite"),
    ] {
        let names = TableNames::default();
        let all = migrations(dialect, &names);
        let stmts = outbox_core::table::Statements::new(dialect, &names);
        for (i, migration) in all.iter().enumerate() {
            let mut up: String = migration
                .statements
                .iter()
                .map(|s| format!("{s};\n"))
                .collect();
            // From version 2 on, the files record what they applied (version 1's file, as
            // released, does not; the first later file records it too).
            if migration.version > 1 {
                up.push_str(&format!("{};\n", stmts.migrations.record(&all[..=i])));
            }
            let (folder, down) = match migration.version {
                1 => (
                    "2026-11-28-000000_outbox",
                    Table::ALL
                        .iter()
                        .rev()
                        // Version 1's file as released; later tables go with their version.
                        .filter(|t| {
                            !matches!(t, Table::Captures | Table::WalSlot | Table::Liberations)
                        })
                        .map(|t| {
                            format!("DROP TABLE IF EXISTS {};\n", names.qualified(dialect, *t))
                        })
                        .collect::<String>(),
                ),
                2 => (
                    "2026-11-30-000000_schema_soft_delete",
                    format!(
                        "ALTER TABLE {} DROP COLUMN deleted;\n",
                        names.qualified(dialect, Table::Schemas)
                    ),
                ),
                3 => (
                    "2026-11-30-000003_captures",
                    format!(
                        "DROP TABLE IF EXISTS {};\n",
                        names.qualified(dialect, Table::Captures)
                    ),
                ),
                4 => (
                    "2026-11-30-000004_wal_slot",
                    match dialect {
                        Dialect::Postgres => format!(
                            "DROP TABLE IF EXISTS {};\n",
                            names.qualified(dialect, Table::WalSlot)
                        ),
                        // Nothing was created; diesel refuses an empty migration file.
                        _ => "SELECT 1;\n".to_owned(),
                    },
                ),
                5 => (
                    "2026-11-30-000005_liberations",
                    format!(
                        "DROP TABLE IF EXISTS {};\n",
                        names.qualified(dialect, Table::Liberations)
                    ),
                ),
                other => panic!("migration {other} has no diesel CLI folder yet: add one here"),
            };
            let folder = root.join(dir).join(folder);
            if std::env::var_os("OUTBOX_WRITE_MIGRATIONS").is_some() {
                std::fs::create_dir_all(&folder).expect("mkdir");
                std::fs::write(folder.join("up.sql"), &up).expect("write");
                std::fs::write(folder.join("down.sql"), &down).expect("write");
            }
            let on_disk = std::fs::read_to_string(folder.join("up.sql")).expect("up.sql exists");
            assert_eq!(
                on_disk,
                up,
                "{}/up.sql differs from the contract; rerun with OUTBOX_WRITE_MIGRATIONS=1",
                folder.display()
            );
            assert_eq!(
                std::fs::read_to_string(folder.join("down.sql")).expect("down.sql"),
                down
            );
        }
    }
}

/// The TLS material `.ci/tls.sh` makes (CA, the `outbox_tls` users' password), or (outside
/// CI) `None` to skip.
fn tls() -> Option<(String, String)> {
    let Ok(dir) = std::env::var("OUTBOX_TEST_TLS_DIR") else {
        assert!(
            !ci(),
            "CI=true but OUTBOX_TEST_TLS_DIR is not set (.ci/setup sets it)"
        );
        eprintln!("skipping: OUTBOX_TEST_TLS_DIR is not set");
        return None;
    };
    let dir = std::path::Path::new(&dir);
    let password = std::fs::read_to_string(dir.join("password")).expect("password");
    Some((
        dir.join("ca.crt").display().to_string(),
        password.trim().to_owned(),
    ))
}

/// diesel reaches the databases over verified TLS with the URL parameters libpq and
/// libmysqlclient read (what the README documents), as the TLS-only test users; a CA that
/// did not sign the server's certificate is refused.
#[test]
fn diesel_over_verified_tls_on_postgres_and_mariadb() {
    let Some((ca, password)) = tls() else { return };
    let pg = format!(
        "postgres://outbox_tls:{password}@localhost:5432/test?sslmode=verify-full&sslrootcert={ca}"
    );
    let mut conn = PgConnection::establish(&pg).expect("verify-full");
    atomic_and_refuses_bad_input(&mut conn);
    let maria = format!(
        "mysql://outbox_tls:{password}@localhost:3306/test?ssl_mode=VERIFY_IDENTITY&ssl_ca={ca}"
    );
    let mut conn = MysqlConnection::establish(&maria).expect("VERIFY_IDENTITY");
    atomic_and_refuses_bad_input(&mut conn);

    let other = ca.replace("ca.crt", "other-ca.crt");
    let err = PgConnection::establish(&pg.replace(&ca, &other))
        .err()
        .expect("wrong CA refused");
    assert!(err.to_string().contains("certificate"), "{err}");
    let err = MysqlConnection::establish(&maria.replace(&ca, &other))
        .err()
        .expect("wrong CA refused");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

/// A database set up with the diesel CLI's files (every folder, in order) is one the writers
/// and the relay then migrate without applying anything again.
#[tokio::test]
async fn cli_files_then_runtime_migrations_agree() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let mut folders: Vec<_> = std::fs::read_dir(&root)
        .expect("folders")
        .map(|e| e.expect("entry").path())
        .collect();
    folders.sort();
    let dir = tempfile::tempdir().expect("dir");
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("cli.db").display()
    ))
    .await
    .expect("sqlite");
    for folder in &folders {
        let up = std::fs::read_to_string(folder.join("up.sql")).expect("up.sql");
        sqlx::raw_sql(sqlx::AssertSqlSafe(up))
            .execute(&pool)
            .await
            .expect("CLI migration");
    }
    let stmts = outbox_core::table::Statements::new(Dialect::Sqlite, &TableNames::default());
    outbox_sqlx::migrate(&pool, &stmts)
        .await
        .expect("runtime migration after the CLI");
    let recorded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM \"outbox_migrations\"")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(
        recorded,
        migrations(Dialect::Sqlite, &TableNames::default()).len() as i64
    );
}

/// A schema id that vanishes between its insert and its read (a trigger here, a concurrent
/// writer in production) is a conflict, as through sqlx: diesel used to register id 0.
#[test]
fn diesel_never_registers_schema_id_zero() {
    let dir = tempfile::tempdir().expect("dir");
    let mut conn = SqliteConnection::establish(&dir.path().join("d.db").display().to_string())
        .expect("sqlite");
    let names = names();
    DieselOutbox::builder()
        .table_names(names.clone())
        .build(&mut conn)
        .expect("migrates");
    let ids = names.qualified(Dialect::Sqlite, Table::SchemaIds);
    conn.run(
        &format!(
            "CREATE TRIGGER vanish AFTER INSERT ON {ids} BEGIN DELETE FROM {ids} WHERE id = NEW.id; END"
        ),
        vec![],
    )
    .expect("trigger");
    let err = DieselOutbox::builder()
        .table_names(names.clone())
        .register::<OrderPlaced>()
        .build(&mut conn)
        .expect_err("no id to register under");
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    let schemas = names.qualified(Dialect::Sqlite, Table::Schemas);
    let registered = conn
        .load_rows::<i64>(&format!("SELECT COUNT(*) AS value FROM {schemas}"), vec![])
        .expect("count");
    assert_eq!(registered, [0]);
}

/// Services starting together on one SQLite file all start, migrate and register once.
#[test]
fn diesel_sqlite_start_ups_queue_instead_of_failing_locked() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("d.db").display().to_string();
    let names = names();
    let threads = 8;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (path, names, barrier) = (path.clone(), names.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut conn = SqliteConnection::establish(&path).expect("sqlite");
                diesel::connection::SimpleConnection::batch_execute(
                    &mut conn,
                    "PRAGMA busy_timeout = 30000",
                )
                .expect("busy timeout");
                barrier.wait();
                let outbox = outbox(&mut conn, &names);
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    Ok(outbox.publish(conn, &order(1)).expect("publish"))
                })
                .expect("commit")
            })
        })
        .collect();
    let ids: Vec<Uuid> = handles
        .into_iter()
        .map(|h| h.join().expect("no start-up failed"))
        .collect();
    assert_eq!(ids.len(), threads);
    let mut conn = SqliteConnection::establish(&path).expect("sqlite");
    assert_eq!(
        count(&mut conn, &names),
        threads as i64,
        "every publish landed"
    );
    let versions = names.qualified(Dialect::Sqlite, Table::Schemas);
    let registered = conn
        .load_rows::<i64>(&format!("SELECT COUNT(*) AS value FROM {versions}"), vec![])
        .expect("count");
    assert_eq!(
        registered,
        [2],
        "each event type registered once, not once a service"
    );
}

/// `DieselPool::begin_write` on SQLite takes the write lock up front (`BEGIN IMMEDIATE`), as
/// the core's contract asks: two write transactions that read before they write queue on the
/// busy timeout. With a deferred `BEGIN` both hold read locks, and the second to write fails
/// at once with "database is locked" whatever the timeout (SQLite's deadlock rule).
#[test]
fn diesel_sqlite_write_transactions_that_read_first_queue() {
    use outbox_core::sql::{Query, SqlConnection, SqlPool, SqlTransaction, Statement};
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("d.db").display().to_string();
    let mut setup = SqliteConnection::establish(&path).expect("sqlite");
    setup
        .run("CREATE TABLE counter (n INTEGER NOT NULL)", vec![])
        .expect("table");
    setup
        .run("INSERT INTO counter (n) VALUES (0)", vec![])
        .expect("row");
    let threads = 4;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (path, barrier) = (path.clone(), barrier.clone());
            std::thread::spawn(move || -> outbox_core::Result<()> {
                let mut conn = SqliteConnection::establish(&path).expect("sqlite");
                conn.run("PRAGMA busy_timeout = 30000", vec![])
                    .expect("busy timeout");
                let pool = outbox_diesel::DieselPool::new(&mut conn);
                let read = Query::<i64>::new("SELECT n AS value FROM counter");
                let write = Statement::new("UPDATE counter SET n = n + 1");
                barrier.wait();
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime")
                    .block_on(async {
                        let mut tx = pool.begin_write().await?;
                        tx.fetch("read", &read, vec![]).await?;
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        tx.execute("write", &write, vec![]).await?;
                        tx.commit().await
                    })
            })
        })
        .collect();
    for handle in handles {
        handle
            .join()
            .expect("no panic")
            .expect("every writer commits");
    }
    let n = setup
        .load_rows::<i64>("SELECT n AS value FROM counter", vec![])
        .expect("read");
    assert_eq!(n, [threads as i64], "every increment landed");
}
