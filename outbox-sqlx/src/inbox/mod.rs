//! The inbox consumer on sqlx: [`SqlxInbox`] applies each event exactly once in one
//! transaction with its `ce_id`, through the application's [`InboxHandler`].

mod handler;
mod sink;

use std::time::Duration;

use outbox_core::Schema;
use outbox_core::table::{InboxStatements, Statements, TableNames};
use outbox_inbox::{Applied, ApplyError, DeadLetter, InboxBackend, InboxEvent};
use sqlx::{Pool, Transaction};

use outbox_core::sql::{Query, SqlConnection, SqlPool};

use crate::SqlxPool;
use crate::database::{OutboxDatabase, Value, begin_write};
use crate::error::store;

pub use handler::{Handler, InboxHandler};
pub use sink::Sink;

/// What an inbox does with an event inside its transaction: an application's handler
/// ([`Handler`]) or a sink. Implemented by this crate.
pub trait Effect<DB: sqlx::Database>: Send + Sync + 'static {
    /// The schema to read values with, `None` for each record's writer schema.
    fn reader_schema(&self) -> outbox_core::Result<Option<Schema>>;

    /// Runs the effect in `tx`.
    fn run(
        &self,
        tx: &mut Transaction<'static, DB>,
        event: &InboxEvent,
    ) -> impl Future<Output = Result<(), ApplyError>> + Send;
}

/// The inbox tables on a sqlx pool, with the effect to apply: the backend an
/// [`outbox_inbox::Inbox`] runs on.
#[derive(Debug)]
pub struct SqlxInbox<DB: sqlx::Database, E> {
    pool: Pool<DB>,
    stmts: InboxStatements,
    effect: E,
}

impl<DB: OutboxDatabase, H: InboxHandler<DB>> SqlxInbox<DB, Handler<H>> {
    /// An inbox whose tables are named by `names`, calling `handler` for each new event.
    /// Create the tables first with [`migrate_inbox`](crate::migrate_inbox).
    pub fn new(pool: Pool<DB>, names: &TableNames, handler: H) -> Self {
        Self::with_effect(pool, names, Handler(handler))
    }
}

impl<DB: OutboxDatabase, E: Effect<DB>> SqlxInbox<DB, E> {
    /// An inbox applying `effect`.
    pub fn with_effect(pool: Pool<DB>, names: &TableNames, effect: E) -> Self {
        Self {
            pool,
            stmts: InboxStatements::new(DB::DIALECT, names),
            effect,
        }
    }

    /// Creates or upgrades the inbox tables (see [`migrate_inbox`](crate::migrate_inbox)).
    ///
    /// # Errors
    ///
    /// [`outbox_core::Error::Store`] when a statement fails.
    pub async fn migrate(&self, names: &TableNames) -> outbox_core::Result<()> {
        crate::migrate_inbox(&self.pool, &Statements::new(DB::DIALECT, names)).await
    }
}

impl<DB: OutboxDatabase, E: Effect<DB>> InboxBackend for SqlxInbox<DB, E> {
    fn reader_schema(&self) -> outbox_core::Result<Option<Schema>> {
        self.effect.reader_schema()
    }

    async fn apply(&self, group: &str, event: &InboxEvent) -> Result<Applied, ApplyError> {
        let fail = |op| move |e| ApplyError::Store(store(op)(e));
        let mut tx = begin_write(&self.pool)
            .await
            .map_err(fail("inbox: begin"))?;
        let params = vec![
            Value::Text(group.to_owned()),
            Value::Text(event.ce_id.clone()),
        ];
        let inserted = DB::run(&mut *tx, &self.stmts.insert_processed, params)
            .await
            .map_err(fail("inbox: record ce_id"))?;
        if inserted == 0 {
            tx.rollback().await.map_err(fail("inbox: rollback"))?;
            return Ok(Applied::Duplicate);
        }
        if let Err(e) = self.effect.run(&mut tx, event).await {
            // Dropping the transaction rolls it back; an explicit rollback reports nothing
            // more useful than the effect's own error.
            drop(tx);
            return Err(e);
        }
        tx.commit().await.map_err(fail("inbox: commit"))?;
        Ok(Applied::Processed)
    }

    async fn dead_letter(&self, group: &str, letter: DeadLetter<'_>) -> outbox_core::Result<()> {
        let params = letter.params(group);
        let mut conn = self.pool.acquire().await.map_err(store("inbox: connect"))?;
        DB::run(&mut *conn, &self.stmts.insert_dead_letter, params)
            .await
            .map_err(store("inbox: dead letter"))?;
        Ok(())
    }

    async fn dead_letter_keys(&self, group: &str) -> outbox_core::Result<Vec<(String, Vec<u8>)>> {
        let pool = SqlxPool::from(self.pool.clone());
        let mut conn = pool.acquire().await?;
        let keys = Query::<(String, Vec<u8>)>::new(self.stmts.select_dead_letter_keys.clone());
        conn.fetch(
            "inbox: dead-lettered keys",
            &keys,
            vec![Value::Text(group.to_owned())],
        )
        .await
    }

    async fn purge(&self, group: &str, age: Duration) -> outbox_core::Result<u64> {
        let seconds = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
        let mut total = 0;
        loop {
            let mut conn = self.pool.acquire().await.map_err(store("inbox: connect"))?;
            let params = vec![Value::Text(group.to_owned()), Value::I64(seconds)];
            let deleted = DB::run(&mut *conn, &self.stmts.purge, params)
                .await
                .map_err(store("inbox: retention"))?;
            total += deleted;
            if deleted < self.stmts.purge_batch() as u64 {
                return Ok(total);
            }
        }
    }
}
