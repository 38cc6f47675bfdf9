//! outbox-sqlx on SQLite (a file per test).

#[macro_use]
mod common;

use sqlx::Sqlite;

/// A database file in a temporary directory that lives as long as the returned guard.
async fn pool() -> Option<(tempfile::TempDir, sqlx::Pool<Sqlite>)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("outbox.db").display()
    );
    let pool = common::connect::<Sqlite>(&url).await?;
    Some((dir, pool))
}

// No `late_commit_is_not_lost`: SQLite has one writer at a time, so a transaction cannot
// commit after a later one (the second writer waits for the first).
capture_suite!(pool);
liberate_suite!(pool);

shared_suite!(pool:
    schema_store_conformance,
    relay_store_conformance,
    negative_schema_id_is_a_malformed_row,
    migrations_are_idempotent,
    publish_is_atomic,
    bad_input_writes_nothing,
    breaking_change_fails_start_up,
    lint_deny_fails_start_up,
    concurrent_registration,
    drain_sees_everything_in_order,
    upgrade_from_version_1_then_soft_and_permanent_delete,
);
