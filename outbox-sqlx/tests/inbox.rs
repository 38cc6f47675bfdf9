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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_sink_upserts_and_deletes() {
    let pool = sqlx::PgPool::connect(&pg_url()).await.expect("postgres");
    inbox_support::sink_upserts_and_deletes(pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_sink_upserts_and_deletes() {
    let pool = sqlx::MySqlPool::connect(&mysql_url())
        .await
        .expect("mariadb");
    inbox_support::sink_upserts_and_deletes(pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_sink_upserts_and_deletes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("sink.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("sqlite");
    inbox_support::sink_upserts_and_deletes(pool).await;
}

/// A database already holding the outbox (every outbox migration, with a row waiting) gets the
/// inbox's migrations beside them: the row survives, the outbox's versions and 1001 are
/// recorded, and
/// running both again changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_migrations_upgrade_a_database_holding_the_outbox() {
    use outbox_core::relay::InsertRows as _;
    use outbox_core::table::{Dialect, Statements, Table, TableNames};

    let pool = sqlx::PgPool::connect(&pg_url()).await.expect("postgres");
    let id = uuid::Uuid::now_v7().simple().to_string();
    let names = TableNames::with_prefix(&format!("u{}", &id[20..])).expect("names");
    let stmts = Statements::new(Dialect::Postgres, &names);
    outbox_sqlx::migrate(&pool, &stmts)
        .await
        .expect("outbox migrations");
    let store = outbox_sqlx::SqlxRelayStore::new(pool.clone(), std::sync::Arc::new(stmts.clone()));
    let row = outbox_core::NewOutboxRow {
        event_id: uuid::Uuid::now_v7(),
        topic: "t".into(),
        event_key: None,
        event_type: "x.Y".into(),
        schema_id: None,
        content_type: "application/json".into(),
        payload: b"{}".to_vec(),
        headers: vec![],
    };
    store.insert_rows(&[row]).await.expect("row");
    outbox_sqlx::migrate_inbox(&pool, &stmts)
        .await
        .expect("inbox migrations");
    outbox_sqlx::migrate_inbox(&pool, &stmts)
        .await
        .expect("inbox migrations again");
    outbox_sqlx::migrate(&pool, &stmts)
        .await
        .expect("outbox migrations again");
    let q = |sql: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .fetch_all(&pool)
                .await
                .expect("query")
        }
    };
    let t = |table| names.qualified(Dialect::Postgres, table);
    assert_eq!(
        q(format!(
            "SELECT version FROM {} ORDER BY version",
            t(Table::Migrations)
        ))
        .await,
        outbox_core::table::migrations(Dialect::Postgres, &names)
            .iter()
            .map(|m| m.version)
            .chain([1001])
            .collect::<Vec<_>>()
    );
    assert_eq!(
        q(format!("SELECT COUNT(*) FROM {}", t(Table::Events))).await,
        vec![1]
    );
    assert_eq!(
        q(format!("SELECT COUNT(*) FROM {}", t(Table::Inbox))).await,
        vec![0]
    );
    assert_eq!(
        q(format!(
            "SELECT COUNT(*) FROM {}",
            t(Table::InboxDeadLetters)
        ))
        .await,
        vec![0]
    );
    for table in Table::ALL.into_iter().chain(Table::INBOX) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {}",
            t(table)
        )))
        .execute(&pool)
        .await
        .expect("drop");
    }
}

/// A dead letter whose reason carries a NUL (a handler's error quoting an event's string, say)
/// is stored on PostgreSQL, which refuses NUL in text: the runner retries a failed dead letter
/// until it lands, so a refusal would hold the partition for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stores_a_dead_letter_whose_reason_holds_a_nul() {
    use outbox_core::table::{Dialect, Table, TableNames};
    use outbox_inbox::{DeadLetter, InboxBackend as _, Reason};

    let pool = sqlx::PgPool::connect(&pg_url()).await.expect("postgres");
    let id = uuid::Uuid::now_v7().simple().to_string();
    let names = TableNames::with_prefix(&format!("n{}", &id[20..])).expect("names");
    let schema = outbox_core::Schema::parse_str(
        r#"{"type":"record","name":"Row","fields":[{"name":"v","type":"string"}]}"#,
    )
    .expect("schema");
    let sink = outbox_sqlx::Sink::new(schema, "unused", "k", &[]).expect("sink");
    let backend = outbox_sqlx::SqlxInbox::with_effect(pool.clone(), &names, sink);
    backend.migrate(&names).await.expect("migrate");
    let reason = Reason::HandlerFailed {
        attempts: 5,
        last: "no order named a\0b".to_owned(),
    };
    let letter = DeadLetter {
        topic: "t",
        partition: 0,
        offset: 7,
        ce_id: Some("id-7"),
        key: None,
        value: None,
        headers: "[]",
        reason: &reason,
    };
    backend
        .dead_letter("g", letter)
        .await
        .expect("the dead letter is stored");
    let dead = names.qualified(Dialect::Postgres, Table::InboxDeadLetters);
    let stored: Vec<String> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT reason FROM {dead}")))
            .fetch_all(&pool)
            .await
            .expect("reason");
    assert_eq!(
        stored,
        ["handler failed 5 times, last: no order named a\u{fffd}b"],
        "the NUL replaced, the rest kept"
    );
    for table in Table::INBOX {
        let t = names.qualified(Dialect::Postgres, table);
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {t}")))
            .execute(&pool)
            .await
            .expect("drop");
    }
}
