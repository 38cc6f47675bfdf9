//! outbox-sqlx on MariaDB or MySQL (`OUTBOX_TEST_MYSQL_URL`, default the local `test`
//! database).

mod common;

use sqlx::MySql;

async fn pool() -> Option<sqlx::Pool<MySql>> {
    common::connect::<MySql>(&common::url(
        "OUTBOX_TEST_MYSQL_URL",
        "mysql://root@localhost:3306/test",
    ))
    .await
}

macro_rules! shared_suite {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let Some(pool) = pool().await else { return };
            common::$name(&pool).await;
        }
    )*};
}

shared_suite!(
    schema_store_conformance,
    relay_store_conformance,
    migrations_are_idempotent,
    publish_is_atomic,
    bad_input_writes_nothing,
    breaking_change_fails_start_up,
    concurrent_registration,
    drain_sees_everything_in_order,
    late_commit_is_not_lost,
);
