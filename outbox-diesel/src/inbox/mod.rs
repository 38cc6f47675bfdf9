//! The inbox consumer on diesel: [`DieselInbox`] applies each event exactly once in one
//! transaction with its `ce_id`, through the application's [`DieselInboxHandler`] or a
//! [`DieselSink`]. diesel is blocking, so each call runs on Tokio's blocking pool, on a
//! connection of a small pool.

mod handler;
mod sink;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outbox_core::Schema;
use outbox_core::sql::SqlPool;
use outbox_core::table::{InboxStatements, TableNames};
use outbox_inbox::{Applied, ApplyError, DeadLetter, InboxBackend, InboxEvent, store};

use crate::DieselPool;
use crate::connection::OutboxConnection;
use crate::error::store;

pub use handler::{DieselHandler, DieselInboxHandler};
pub use sink::DieselSink;

/// What an inbox does with an event inside its transaction: an application's handler
/// ([`DieselHandler`]) or a sink ([`DieselSink`]). Implemented by this crate.
pub trait DieselEffect<C>: Send + Sync + 'static {
    /// The schema to read values with, `None` for each record's writer schema.
    ///
    /// # Errors
    ///
    /// When the schema is not valid Avro.
    fn reader_schema(&self) -> outbox_core::Result<Option<Schema>>;

    /// Runs the effect on `conn`, inside the inbox's transaction.
    ///
    /// # Errors
    ///
    /// [`ApplyError::Rejected`] for an event that can never be applied, [`ApplyError::Handler`]
    /// for a failure worth retrying; the transaction rolls back either way.
    fn run(&self, conn: &mut C, event: &InboxEvent) -> Result<(), ApplyError>;
}

/// The inbox tables on a diesel database, with the effect to apply: the backend an
/// [`outbox_inbox::Inbox`] runs on.
#[derive(Debug)]
pub struct DieselInbox<C, E> {
    inner: Arc<Inner<C, E>>,
}

#[derive(Debug)]
struct Inner<C, E> {
    url: String,
    idle: Mutex<Vec<C>>,
    stmts: InboxStatements,
    effect: E,
}

/// Why a transaction ended early.
enum Abort {
    Duplicate,
    Db(diesel::result::Error),
    /// A statement of the shared bookkeeping ([`outbox_inbox::store`]) failed.
    Store(outbox_core::Error),
    Apply(ApplyError),
}

impl From<diesel::result::Error> for Abort {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e)
    }
}

impl<C: OutboxConnection + 'static, H: DieselInboxHandler<C>> DieselInbox<C, DieselHandler<H>> {
    /// An inbox on the database at `url` (connections made as needed, kept while idle), with
    /// its tables named by `names`, calling `handler` for each new event. Create the tables
    /// first with [`migrate_inbox`](crate::migrate_inbox).
    pub fn new(url: impl Into<String>, names: &TableNames, handler: H) -> Self {
        Self::with_effect(url, names, DieselHandler(handler))
    }
}

impl<C: OutboxConnection + 'static, E: DieselEffect<C>> DieselInbox<C, E> {
    /// An inbox on the database at `url` applying `effect` (a [`DieselSink`], say).
    pub fn with_effect(url: impl Into<String>, names: &TableNames, effect: E) -> Self {
        Self {
            inner: Arc::new(Inner {
                url: url.into(),
                idle: Mutex::default(),
                stmts: InboxStatements::new(<C::Backend as crate::DieselBackend>::DIALECT, names),
                effect,
            }),
        }
    }

    /// Runs `f` on a pooled connection on the blocking pool.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner<C, E>, &mut C) -> Result<T, Abort> + Send + 'static,
    ) -> Result<T, Abort> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let pooled = inner
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let mut conn = match pooled {
                Some(conn) => conn,
                None => C::establish(&inner.url).map_err(|e| {
                    Abort::Db(diesel::result::Error::QueryBuilderError(Box::new(e)))
                })?,
            };
            let result = f(&inner, &mut conn);
            if !matches!(result, Err(Abort::Db(_) | Abort::Store(_))) {
                inner
                    .idle
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(conn);
            }
            result
        })
        .await
        .map_err(|e| Abort::Apply(ApplyError::Handler(Box::new(e))))?
    }
}

fn store_error(op: &'static str) -> impl FnOnce(Abort) -> outbox_core::Error {
    move |e| match e {
        Abort::Db(e) => store(op)(e),
        Abort::Store(e) => e,
        Abort::Duplicate | Abort::Apply(_) => outbox_core::Error::Store {
            operation: op,
            retryable: true,
            source: "blocking task failed".into(),
        },
    }
}

/// Runs a shared bookkeeping step on `conn`. diesel is blocking: the step's futures are ready
/// when first polled, so `block_on` returns at once.
fn on<'c, C: OutboxConnection, T>(
    conn: &'c mut C,
    step: impl AsyncFnOnce(&DieselPool<'c, C>) -> outbox_core::Result<T>,
) -> Result<T, Abort> {
    let pool = DieselPool::new(conn);
    futures_executor::block_on(step(&pool)).map_err(Abort::Store)
}

impl<C: OutboxConnection + 'static, E: DieselEffect<C>> InboxBackend for DieselInbox<C, E> {
    fn reader_schema(&self) -> outbox_core::Result<Option<Schema>> {
        self.inner.effect.reader_schema()
    }

    async fn apply(&self, group: &str, event: &InboxEvent) -> Result<Applied, ApplyError> {
        let group = group.to_owned();
        let event = event.clone();
        let result = self
            .with_conn(move |inner, conn| {
                conn.transaction::<_, Abort, _>(|conn| {
                    let new = on(conn, async |pool| {
                        let mut conn = pool.acquire().await?;
                        store::record_processed(&mut conn, &inner.stmts, &group, &event.ce_id).await
                    })?;
                    if !new {
                        return Err(Abort::Duplicate);
                    }
                    inner.effect.run(conn, &event).map_err(Abort::Apply)
                })
            })
            .await;
        match result {
            Ok(()) => Ok(Applied::Processed),
            Err(Abort::Duplicate) => Ok(Applied::Duplicate),
            Err(Abort::Db(e)) => Err(ApplyError::Store(store("inbox: apply")(e))),
            Err(Abort::Store(e)) => Err(ApplyError::Store(e)),
            Err(Abort::Apply(e)) => Err(e),
        }
    }

    async fn dead_letter(&self, group: &str, letter: DeadLetter<'_>) -> outbox_core::Result<()> {
        let params = letter.params(group);
        self.with_conn(move |inner, conn| {
            on(conn, async |pool| {
                store::dead_letter(pool, &inner.stmts, params).await
            })
        })
        .await
        .map_err(store_error("inbox: dead letter"))
    }

    async fn dead_letter_keys(&self, group: &str) -> outbox_core::Result<Vec<(String, Vec<u8>)>> {
        let group = group.to_owned();
        self.with_conn(move |inner, conn| {
            on(conn, async |pool| {
                store::dead_letter_keys(pool, &inner.stmts, &group).await
            })
        })
        .await
        .map_err(store_error("inbox: dead-lettered keys"))
    }

    async fn purge(&self, group: &str, age: Duration) -> outbox_core::Result<u64> {
        let group = group.to_owned();
        self.with_conn(move |inner, conn| {
            on(conn, async |pool| {
                store::purge(pool, &inner.stmts, &group, age).await
            })
        })
        .await
        .map_err(store_error("inbox: retention"))
    }
}
