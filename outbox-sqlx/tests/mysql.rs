//! outbox-sqlx on MariaDB or MySQL (`OUTBOX_TEST_MYSQL_URL`, default the local `test`
//! database).

#[macro_use]
mod common;

use sqlx::MySql;

async fn pool() -> Option<((), sqlx::Pool<MySql>)> {
    let url = common::url("OUTBOX_TEST_MYSQL_URL", "mysql://root@localhost:3306/test");
    common::connect::<MySql>(&url).await.map(|pool| ((), pool))
}

shared_suite!(pool);
capture_suite!(pool);
liberate_suite!(pool);
shared_suite!(pool: liberate_bulk_under_live_capture);
