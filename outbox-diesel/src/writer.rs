//! What the blocking and the async diesel outbox share: the start-up (migrations, WAL mode's
//! slot check, then every event type registered through `outbox-core`'s one registry and
//! schema store) and the statements a publish runs. Only running them differs between the two.

use std::sync::Arc;

use outbox_core::publish::{Codecs, OutboxOptions};
use outbox_core::registry::{EitherStore, Registry, RemoteSchemaStore, SqlSchemaStore};
use outbox_core::sql::SqlPool;
use outbox_core::table::{Dialect, PublishTarget, SqlValue, Statements};
use outbox_core::wal::WalStatements;
use outbox_core::{Error, Event, Result};
use uuid::Uuid;

/// The statements, the options and the codecs of one diesel outbox.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) stmts: Arc<Statements>,
    pub(crate) codecs: Codecs,
    /// Rows in the events table, or (WAL mode) logical messages.
    target: PublishTarget,
}

/// The statements one publish runs, in order, each with the operation its error names.
pub(crate) struct Inserts {
    pub(crate) statements: Vec<(&'static str, String, Vec<SqlValue>)>,
    pub(crate) ids: Vec<Uuid>,
}

impl Writer {
    /// A writer for `dialect` with `options`, publishing as logical messages when `wal`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for `auto_register` (a diesel outbox has no connection of its
    /// own to register on later) and for `wal` on MySQL or SQLite.
    pub(crate) fn new(dialect: Dialect, options: OutboxOptions, wal: bool) -> Result<Self> {
        if options.auto_register {
            return Err(Error::InvalidConfig {
                key: "auto_register".to_owned(),
                reason: "not supported by outbox-diesel: register every event type at start-up"
                    .to_owned(),
            });
        }
        let target = if wal {
            PublishTarget::Wal(WalStatements::new(dialect, &options.table_names)?)
        } else {
            PublishTarget::Table {
                notify: options.notify_relay,
            }
        };
        Ok(Self {
            stmts: Arc::new(Statements::new(dialect, &options.table_names)),
            codecs: Codecs::new(options),
            target,
        })
    }

    /// Migrates (unless turned off), checks WAL mode's slot, then registers every event
    /// type, on `pool`.
    pub(crate) async fn start<P: SqlPool>(&self, pool: P) -> Result<()> {
        let options = self.codecs.options();
        if options.run_migrations {
            outbox_core::sql::migrate(&pool, &self.stmts.migrations).await?;
        }
        if let PublishTarget::Wal(wal) = &self.target {
            // A message emitted while no slot exists is lost for good: refuse to start.
            let mut conn = pool.acquire().await?;
            outbox_core::wal::check_wal_slot(&mut conn, wal).await?;
        }
        if options.event_types.is_empty() {
            return Ok(());
        }
        let store = match &options.schema_registry {
            Some(remote) => EitherStore::Right(RemoteSchemaStore::new(remote.clone())),
            None => EitherStore::Left(SqlSchemaStore::<P>::new(pool, Arc::clone(&self.stmts))),
        };
        let registry = Registry::new(store)
            .with_default_mode(options.default_compatibility)
            .with_lint(options.lint_level, options.lint_config.clone())
            .on_lint(|subject, report| {
                for v in &report.violations {
                    tracing::warn!(subject, violation = %v, "schema design rule broken");
                }
            });
        for ty in &options.event_types {
            let (subject, schema) = self.codecs.subject(ty)?;
            let registered = registry.register(&subject, &schema).await?;
            self.codecs.add(ty, registered.id, subject, schema);
        }
        Ok(())
    }

    /// Validates and encodes `events` (all or nothing, before any SQL runs) into the
    /// statements that publish them: `outbox-core`'s [`Statements::publish_to`] list (the
    /// inserts plus the relays' NOTIFY when asked for, or WAL mode's logical messages).
    ///
    /// # Errors
    ///
    /// [`Error::UnregisteredEvent`], [`Error::SchemaViolation`], [`Error::PayloadTooLarge`],
    /// [`Error::SchemaIdOutOfRange`].
    pub(crate) fn inserts<E: Event + 'static>(
        &self,
        events: &[E],
        headers: &[(&str, &str)],
    ) -> Result<Inserts> {
        let codec = self
            .codecs
            .get::<E>()
            .ok_or_else(Codecs::unregistered::<E>)?;
        let rows = Codecs::rows(&codec, events, headers)?;
        let statements = self
            .stmts
            .publish_to(&self.target, &rows)?
            .into_iter()
            .map(|s| (s.operation, s.sql.into_owned(), s.params))
            .collect();
        Ok(Inserts {
            statements,
            ids: rows.iter().map(|r| r.event_id).collect(),
        })
    }
}
