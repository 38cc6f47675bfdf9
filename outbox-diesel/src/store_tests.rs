//! The registry conformance suite on a diesel connection, as every other schema store runs
//! it (memory, sqlx on each database).

use std::sync::Arc;

use outbox_core::registry::conformance;
use outbox_core::table::{Statements, TableNames};

use crate::connection::{DieselBackend, OutboxConnection};
use crate::{DieselSchemaStore, migrate};

fn conformance_on<C: OutboxConnection>(conn: &mut C, name: &str) {
    let prefix = format!("c{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let names = TableNames::with_prefix(&prefix).expect("prefix");
    let stmts = Arc::new(Statements::new(
        <C::Backend as DieselBackend>::DIALECT,
        &names,
    ));
    migrate(conn, &stmts).expect("migrates");
    let store = DieselSchemaStore::new(conn, stmts);
    // diesel is blocking: every future of the store is ready when first polled.
    futures_executor::block_on(conformance::run_all(&store, name));
}

#[cfg(feature = "sqlite")]
#[test]
fn registry_conformance_on_sqlite() {
    use diesel::Connection as _;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("r.db").display().to_string();
    let mut conn = diesel::SqliteConnection::establish(&path).expect("sqlite");
    conformance_on(&mut conn, "diesel-sqlite");
}

#[cfg(feature = "postgres")]
#[test]
fn registry_conformance_on_postgres() {
    let Some(mut conn) = crate::test_db::establish::<diesel::PgConnection>(
        "OUTBOX_TEST_PG_URL",
        crate::test_db::PG_URL,
    ) else {
        return;
    };
    conformance_on(&mut conn, "diesel-postgres");
}

#[cfg(feature = "mysql")]
#[test]
fn registry_conformance_on_mariadb() {
    let Some(mut conn) = crate::test_db::establish::<diesel::MysqlConnection>(
        "OUTBOX_TEST_MYSQL_URL",
        "mysql://root@127.0.0.1:3306/test",
    ) else {
        return;
    };
    conformance_on(&mut conn, "diesel-mariadb");
}
