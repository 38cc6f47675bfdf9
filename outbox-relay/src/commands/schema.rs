//! `outbox-relay schema register|list|get`: the registry in the database (or the remote one
//! the configuration names).

use std::fmt::Write as _;

use outbox_core::registry::SchemaStore;
use outbox_core::{Error, Schema};
use outbox_sqlx::OutboxDatabase;
use sqlx::Pool;

use super::{CommandError, Outcome};
use crate::cli::SchemaCommand;
use crate::settings::Settings;
use crate::validate::invalid;

/// Runs `command`, printing what it did; the file-only `schema` commands are not here.
pub(super) async fn execute<DB: OutboxDatabase>(
    pool: Pool<DB>,
    settings: &Settings,
    command: SchemaCommand,
) -> Result<Outcome, CommandError> {
    match command {
        SchemaCommand::Register { subject, file } => {
            register(pool, settings, &subject, &file).await
        }
        SchemaCommand::List { subject } => {
            print!("{}", list(pool, settings, subject.as_deref()).await?);
            Ok(Outcome::Success)
        }
        SchemaCommand::Get {
            subject,
            version,
            id,
        } => {
            print!(
                "{}",
                get(pool, settings, subject.as_deref(), version, id).await?
            );
            Ok(Outcome::Success)
        }
        SchemaCommand::Check { .. }
        | SchemaCommand::Lint { .. }
        | SchemaCommand::Codegen { .. } => Err(invalid(
            "schema",
            "this command reads files only and needs no database",
        )
        .into()),
    }
}

/// `schema register`: registers a schema under a subject (compatibility-checked), migrating
/// first; an incompatible or lint-refused schema is a [`Outcome::Failure`].
async fn register<DB: OutboxDatabase>(
    pool: Pool<DB>,
    settings: &Settings,
    subject: &str,
    file: &std::path::Path,
) -> Result<Outcome, CommandError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| invalid("FILE", format!("cannot read {}: {e}", file.display())))?;
    let schema = Schema::parse_str(&text)?;
    super::migrate(&pool, settings).await?;
    let registry = super::registry::registry(pool, settings)?;
    match registry.register(subject, &schema).await {
        Ok(registered) => {
            println!(
                "registered {} version {} with id {}",
                registered.subject, registered.version, registered.id
            );
            Ok(Outcome::Success)
        }
        Err(e @ (Error::IncompatibleSchema { .. } | Error::LintFailed { .. })) => {
            eprintln!("error: {e}");
            Ok(Outcome::Failure)
        }
        Err(e) => Err(e.into()),
    }
}

/// `schema list`: subjects, or the versions of one.
async fn list<DB: OutboxDatabase>(
    pool: Pool<DB>,
    settings: &Settings,
    subject: Option<&str>,
) -> outbox_core::Result<String> {
    let registry = super::registry::registry(pool, settings)?;
    let mut out = String::new();
    match subject {
        None => {
            for subject in registry.subjects().await? {
                let _ = writeln!(out, "{subject}");
            }
        }
        Some(subject) => {
            for v in registry.store().versions(subject).await? {
                let _ = writeln!(
                    out,
                    "version {}\tid {}\t{}",
                    v.version,
                    v.id,
                    v.schema.full_name().unwrap_or_default()
                );
            }
        }
    }
    Ok(out)
}

/// `schema get`: a version of a subject (latest when `version` is `None`), or a schema by id.
async fn get<DB: OutboxDatabase>(
    pool: Pool<DB>,
    settings: &Settings,
    subject: Option<&str>,
    version: Option<u32>,
    id: Option<outbox_core::SchemaId>,
) -> outbox_core::Result<String> {
    let registry = super::registry::registry(pool, settings)?;
    let schema = match (subject, id) {
        (_, Some(id)) => registry.schema_by_id(id).await?,
        (Some(subject), None) => registry.version(subject, version).await?.schema,
        (None, None) => return Err(invalid("schema get", "give a SUBJECT or --id")),
    };
    Ok(format!("{}\n", schema.canonical_json()))
}
