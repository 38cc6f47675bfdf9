//! The registry conformance suite on a `diesel-async` connection, as every other schema store
//! runs it (memory, sqlx and blocking diesel on each database).

use std::sync::Arc;

use outbox_core::registry::conformance;
use outbox_core::table::{Statements, TableNames};

use crate::connection::DieselBackend;
use crate::{AsyncDieselPool, AsyncDieselSchemaStore, AsyncOutboxConnection};

async fn conformance_on<C: AsyncOutboxConnection>(url: (&str, &str), name: &str) {
    let url = std::env::var(url.0).unwrap_or_else(|_| url.1.to_owned());
    let mut conn = match C::establish(&url).await {
        Ok(conn) => conn,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and {url} is unreachable: {e}")
        }
        Err(e) => return eprintln!("skipping: {url}: {e}"),
    };
    let prefix = format!("a{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let names = TableNames::with_prefix(&prefix).expect("prefix");
    let stmts = Arc::new(Statements::new(
        <C::Backend as DieselBackend>::DIALECT,
        &names,
    ));
    let pool = AsyncDieselPool::new(&mut conn);
    outbox_core::sql::migrate(&pool, &stmts.migrations)
        .await
        .expect("migrates");
    let store = AsyncDieselSchemaStore::new(pool.clone(), stmts);
    conformance::run_all(&store, name).await;
    pool.settle().await.expect("no rollback fails");
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn registry_conformance_on_async_postgres() {
    conformance_on::<diesel_async::AsyncPgConnection>(
        ("OUTBOX_TEST_PG_URL", crate::test_db::PG_URL),
        "diesel-async-postgres",
    )
    .await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn registry_conformance_on_async_mariadb() {
    conformance_on::<diesel_async::AsyncMysqlConnection>(
        ("OUTBOX_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
        "diesel-async-mariadb",
    )
    .await;
}
