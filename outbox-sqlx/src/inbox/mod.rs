//! The inbox consumer on sqlx: [`SqlxInbox`] applies each event exactly once in one
//! transaction with its `ce_id`, through the application's [`InboxHandler`].

mod handler;
mod sink;

use std::time::Duration;

use outbox_core::Schema;
use outbox_core::table::{InboxStatements, Statements, TableNames};
use outbox_inbox::{Applied, ApplyError, DeadLetter, InboxBackend, InboxEvent, store};
use sqlx::{Pool, Transaction};

use crate::database::{OutboxDatabase, begin_write};
use crate::error::store;
use crate::{SqlxConnection, SqlxPool};

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

    fn sql_pool(&self) -> SqlxPool<DB> {
        SqlxPool::from(self.pool.clone())
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
        let mut tx = begin_write(&self.pool)
            .await
            .map_err(|e| ApplyError::Store(store("inbox: begin")(e)))?;
        let new = store::record_processed(
            &mut SqlxConnection::new(&mut tx),
            &self.stmts,
            group,
            &event.ce_id,
        )
        .await
        .map_err(ApplyError::Store)?;
        if !new {
            // Dropping the transaction rolls it back.
            return Ok(Applied::Duplicate);
        }
        // On an error, dropping the transaction rolls it back; an explicit rollback reports
        // nothing more useful than the effect's own error.
        self.effect.run(&mut tx, event).await?;
        tx.commit()
            .await
            .map_err(|e| ApplyError::Store(store("inbox: commit")(e)))?;
        Ok(Applied::Processed)
    }

    async fn dead_letter(&self, group: &str, letter: DeadLetter<'_>) -> outbox_core::Result<()> {
        store::dead_letter(&self.sql_pool(), &self.stmts, letter.params(group)).await
    }

    async fn dead_letter_keys(&self, group: &str) -> outbox_core::Result<Vec<(String, Vec<u8>)>> {
        store::dead_letter_keys(&self.sql_pool(), &self.stmts, group).await
    }

    async fn purge(&self, group: &str, age: Duration) -> outbox_core::Result<u64> {
        store::purge(&self.sql_pool(), &self.stmts, group, age).await
    }
}
