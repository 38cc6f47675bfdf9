//! `outbox-relay status` on each database: before `migrate` it says what to do instead of
//! printing the database's "no such table" error; after, it prints the backlog.

mod common;

use std::process::{Command, Output};

fn relay(url: &str, prefix: &str, command: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(["--database-url", url, "--table-prefix", prefix, command])
        .env_remove("DATABASE_URL")
        .env_remove("OUTBOX_DATABASE_URL")
        .env_remove("OUTBOX_CONFIG")
        .output()
        .expect("outbox-relay runs")
}

/// `status` before and after `migrate`, on fresh tables of the database at `url` (the
/// binary's own connection; `_pool` only says the database is there).
async fn status_says_to_migrate_first<DB: sqlx::Database>(_pool: sqlx::Pool<DB>, url: &str) {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || status_before_and_after_migrate(&url))
        .await
        .expect("test");
}

fn status_before_and_after_migrate(url: &str) {
    let names = common::fresh_names();
    let events = names.name(outbox_core::table::Table::Events).to_string();
    let prefix = &common::prefix(&names);
    let before = relay(url, prefix, "status");
    let stderr = String::from_utf8_lossy(&before.stderr);
    assert_eq!(before.status.code(), Some(1), "{url}: {stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: the outbox tables ({events}, ...) do not exist in the database named by \
             database_url: run `outbox-relay migrate`"
        ),
        "{url}"
    );
    assert!(before.stdout.is_empty(), "{url}: nothing on stdout");
    let migrated = relay(url, prefix, "migrate");
    assert!(
        migrated.status.success(),
        "{url}: {}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let after = relay(url, prefix, "status");
    let stdout = String::from_utf8_lossy(&after.stdout);
    assert!(
        after.status.success(),
        "{url}: {}",
        String::from_utf8_lossy(&after.stderr)
    );
    assert!(
        stdout.starts_with("backlog:      0 events waiting\noldest event: none\n"),
        "{url}: {stdout}"
    );
}

crate::on_each_database! {
    #[tokio::test]
    status_says_to_migrate_first:
        postgres => status_before_migrate_on_postgres,
        mariadb => status_before_migrate_on_mariadb,
        sqlite => status_before_migrate_on_sqlite,
}
