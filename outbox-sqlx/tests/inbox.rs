//! The inbox consumer on PostgreSQL, MariaDB and SQLite, with the relay upstream on the test
//! broker (`KAFKA_BOOTSTRAP_SERVERS`).

mod inbox_support;

fn pg_url() -> String {
    std::env::var("OUTBOX_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@localhost:5432/test".into())
}

fn mysql_url() -> String {
    std::env::var("OUTBOX_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@localhost:3306/test".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_applies_each_event_once_and_sets_poison_aside() {
    let pool = sqlx::PgPool::connect(&pg_url()).await.expect("postgres");
    inbox_support::exactly_once(pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_applies_each_event_once_and_sets_poison_aside() {
    let pool = sqlx::MySqlPool::connect(&mysql_url())
        .await
        .expect("mariadb");
    inbox_support::exactly_once(pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_applies_each_event_once_and_sets_poison_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("inbox.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.expect("sqlite");
    inbox_support::exactly_once(pool).await;
}
