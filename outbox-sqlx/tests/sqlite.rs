//! outbox-sqlx on SQLite (a file per test).

mod common;

use sqlx::Sqlite;

async fn pool() -> (tempfile::TempDir, sqlx::Pool<Sqlite>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("outbox.db").display()
    );
    let pool = common::connect::<Sqlite>(&url)
        .await
        .expect("SQLite file opens");
    (dir, pool)
}

#[tokio::test]
async fn schema_store_conformance() {
    let (_dir, pool) = pool().await;
    common::schema_store_conformance(&pool).await;
}

#[tokio::test]
async fn relay_store_conformance() {
    let (_dir, pool) = pool().await;
    common::relay_store_conformance(&pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_are_idempotent() {
    let (_dir, pool) = pool().await;
    common::migrations_are_idempotent(&pool).await;
}

#[tokio::test]
async fn publish_is_atomic() {
    let (_dir, pool) = pool().await;
    common::publish_is_atomic(&pool).await;
}

#[tokio::test]
async fn bad_input_writes_nothing() {
    let (_dir, pool) = pool().await;
    common::bad_input_writes_nothing(&pool).await;
}

#[tokio::test]
async fn breaking_change_fails_start_up() {
    let (_dir, pool) = pool().await;
    common::breaking_change_fails_start_up(&pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registration() {
    let (_dir, pool) = pool().await;
    common::concurrent_registration(&pool).await;
}

#[tokio::test]
async fn drain_sees_everything_in_order() {
    let (_dir, pool) = pool().await;
    common::drain_sees_everything_in_order(&pool).await;
}
