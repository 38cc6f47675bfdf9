//! `outbox-relay capture add|list|remove|migrate`: change capture of existing tables with
//! triggers (the logic is `outbox_sqlx::capture`).
//!
//! What happens when DDL bypasses `capture migrate`:
//! - PostgreSQL: the trigger function reads columns by name when it runs; a dropped or
//!   renamed captured column makes every later write to the table fail (the application's
//!   too) until `capture migrate` or `capture add` replaces the trigger; an added column is
//!   not captured, and a changed type writes values the relay may dead-letter.
//! - MySQL/MariaDB: the same, the trigger reads `NEW.<column>`: a dropped column breaks the
//!   application's writes with "Unknown column" until the trigger is replaced.
//! - SQLite: `ALTER TABLE ... DROP COLUMN` and `RENAME COLUMN` of a column a trigger reads are
//!   refused by SQLite itself; other changes behave as on PostgreSQL.

use std::fmt::Write as _;

use outbox_core::capture::CaptureSpec;
use outbox_core::{Error, Result};
use outbox_sqlx::OutboxDatabase;
use outbox_sqlx::capture::{Capture, CaptureInfo};
use sqlx::Pool;

use super::registry::registry;
use super::{CommandError, Outcome};
use crate::cli::{CaptureCommand, Format};
use crate::settings::Settings;

/// Runs `command`, printing what it did.
pub(super) async fn execute<DB: OutboxDatabase>(
    pool: Pool<DB>,
    settings: &Settings,
    command: CaptureCommand,
) -> Result<Outcome, CommandError> {
    super::migrate(&pool, settings).await?;
    let capture = Capture::new(pool.clone(), settings.tables.clone());
    match command {
        CaptureCommand::Add {
            table,
            topic,
            columns,
            exclude,
            rename,
            key,
        } => {
            let spec = spec(
                &table,
                topic.as_deref(),
                columns.as_deref(),
                &exclude,
                &rename,
                &key,
            )?;
            let info = capture.add(&registry(pool, settings)?, &spec).await?;
            println!("capturing {}", describe(&info));
        }
        CaptureCommand::List { format } => {
            print!("{}", list(&capture.list().await?, format == Format::Json));
        }
        CaptureCommand::Remove { table } => {
            if !capture.remove(&table).await? {
                eprintln!("error: table {table} is not captured");
                return Ok(Outcome::Failure);
            }
            println!("removed the capture of {table}");
        }
        CaptureCommand::Migrate { table, ddl } => {
            let info = capture
                .migrate(&registry(pool, settings)?, &table, &ddl)
                .await?;
            println!("applied; capturing {}", describe(&info));
        }
    }
    Ok(Outcome::Success)
}

/// The spec of `capture add` from its flags: `columns` comma-separated (an empty text is an
/// empty list, refused later), `renames` as `old=new`.
///
/// # Errors
///
/// [`Error::InvalidConfig`] for a rename without `=`.
fn spec(
    table: &str,
    topic: Option<&str>,
    columns: Option<&str>,
    exclude: &[String],
    renames: &[String],
    key: &[String],
) -> Result<CaptureSpec> {
    let list = |text: &str| -> Vec<String> {
        text.split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let renames = renames
        .iter()
        .map(|r| match r.split_once('=') {
            Some((old, new)) => Ok((old.trim().to_owned(), new.trim().to_owned())),
            None => Err(Error::InvalidConfig {
                key: "--rename".to_owned(),
                reason: format!("{r:?} is not old=new"),
            }),
        })
        .collect::<Result<_>>()?;
    Ok(CaptureSpec {
        table: table.to_owned(),
        topic: topic.map(str::to_owned),
        columns: columns.map(list),
        exclude: exclude.iter().flat_map(|e| list(e)).collect(),
        renames,
        key: key.iter().flat_map(|k| list(k)).collect(),
    })
}

fn describe(info: &CaptureInfo) -> String {
    format!(
        "{} -> topic {} (subject {}, schema id {})",
        info.table, info.topic, info.subject, info.schema_id
    )
}

/// `capture list`: every captured table, as lines or JSON.
fn list(captures: &[CaptureInfo], json: bool) -> String {
    if json {
        let items: Vec<serde_json::Value> = captures
            .iter()
            .map(|c| {
                serde_json::json!({
                    "table": c.table, "topic": c.topic, "subject": c.subject,
                    "schema_id": c.schema_id, "spec": c.spec,
                })
            })
            .collect();
        return format!("{}\n", serde_json::Value::Array(items));
    }
    let mut out = String::new();
    for c in captures {
        let _ = writeln!(out, "{}", describe(c));
    }
    out
}
