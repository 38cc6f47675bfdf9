//! The `outbox-relay` binary: parses the command line, calls the library, maps exit codes.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use outbox_core::{Error, Schema};
use outbox_relay::config::{Overrides, RelayConfig};
use outbox_relay::schema_check::CheckInput;
use outbox_relay::schema_lint::LintInput;
use outbox_relay::{ops, with_database};

use cli::{Cli, Command, DeadLetterCommand, Format, Global, RegistryCommand, SchemaCommand};

/// Exit code for invalid input or configuration (as clap uses for usage errors).
const EXIT_INVALID_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // sqlx logs PostgreSQL notices ("relation already exists, skipping") at info.
    let default_level = if matches!(cli.command, Command::Run) {
        "info,sqlx=warn"
    } else {
        "warn"
    };
    outbox_relay::logging::init(cli.global.log_format, default_level);
    if let Command::Schema(SchemaCommand::Check {
        mode,
        format,
        topic,
        new,
        existing,
    }) = &cli.command
    {
        return schema_check(mode, *format, topic.as_deref(), new, existing);
    }
    if let Command::Schema(SchemaCommand::Lint {
        format,
        topic,
        lint_config,
        deny_warnings,
        files,
    }) = &cli.command
    {
        return schema_lint(
            *format,
            topic.as_deref(),
            lint_config.as_deref(),
            cli.global.config.as_deref(),
            *deny_warnings,
            files,
        );
    }
    if let Command::Schema(SchemaCommand::Codegen {
        out,
        topic,
        key,
        files,
    }) = &cli.command
    {
        return schema_codegen(out.as_deref(), topic.as_deref(), key.as_deref(), files);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                Error::InvalidConfig { .. }
                | Error::InvalidSchema { .. }
                | Error::InvalidIdentifier { .. } => ExitCode::from(EXIT_INVALID_INPUT),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn schema_check(
    mode: &str,
    format: Format,
    topic: Option<&str>,
    new: &std::path::Path,
    existing: &[std::path::PathBuf],
) -> ExitCode {
    let input = match CheckInput::load(mode, new, existing) {
        Ok(input) => input.with_topic(topic),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID_INPUT);
        }
    };
    let report = input.check();
    match format {
        Format::Text => print!("{}", input.render_text(&report)),
        Format::Json => println!("{}", input.render_json(&report)),
    }
    if report.is_compatible() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `schema lint`: the rules come from `--lint-config`, else from the `[registry] lint_config`
/// of the relay configuration (`--config` or `OUTBOX_CONFIG`), so CI lints with the rules the
/// registry enforces, else the defaults.
fn schema_lint(
    format: Format,
    topic: Option<&str>,
    lint_config: Option<&std::path::Path>,
    relay_config: Option<&std::path::Path>,
    deny_warnings: bool,
    files: &[std::path::PathBuf],
) -> ExitCode {
    let from_relay = match (lint_config, relay_config) {
        (None, Some(path)) => match RelayConfig::from_file(path) {
            Ok(relay) => relay.registry.lint_config,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_INVALID_INPUT);
            }
        },
        _ => None,
    };
    let config = lint_config.or(from_relay.as_deref());
    let input = match LintInput::load(topic, config, files) {
        Ok(input) => input,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID_INPUT);
        }
    };
    let outcome = input.lint();
    match format {
        Format::Text => print!("{}", outcome.render_text()),
        Format::Json => println!("{}", outcome.render_json(deny_warnings)),
    }
    if outcome.passes(deny_warnings) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn schema_codegen(
    out: Option<&std::path::Path>,
    topic: Option<&str>,
    key: Option<&str>,
    files: &[std::path::PathBuf],
) -> ExitCode {
    use outbox_core::codegen::{Codegen, CodegenError};
    let generated = files
        .iter()
        .try_fold(Codegen::new(), |codegen, file| {
            let codegen = codegen.file(file)?;
            Ok(match topic {
                Some(topic) => codegen.event(topic, key.unwrap_or_default()),
                None => codegen,
            })
        })
        .and_then(|codegen| match out {
            Some(path) => codegen.write(path),
            None => codegen.generate().map(|code| print!("{code}")),
        });
    match generated {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                CodegenError::Input { .. } | CodegenError::Output { .. } => {
                    ExitCode::from(EXIT_INVALID_INPUT)
                }
                _ => ExitCode::from(1),
            }
        }
    }
}

fn load_config(global: Global) -> Result<RelayConfig, Error> {
    let kafka_properties = global
        .kafka_property
        .iter()
        .enumerate()
        .map(|(n, kv)| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| Error::InvalidConfig {
                    key: "-X".to_owned(),
                    // Not the text itself: it may be a secret with a typo in place of `=`.
                    reason: format!("value {} is not key=value", n + 1),
                })
        })
        .collect::<Result<Vec<(String, String)>, _>>()?;
    // Flags are visible to every user of the machine (`ps`, /proc/<pid>/cmdline).
    for (key, _) in &kafka_properties {
        if outbox_relay::redact::is_secret_property(key) {
            tracing::warn!(
                property = %key,
                "a secret on the command line is visible to every user of this machine; use OUTBOX_KAFKA_<NAME> or OUTBOX_KAFKA_<NAME>_FILE"
            );
        }
    }
    if global
        .database_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .is_some_and(|u| u.password().is_some())
    {
        tracing::warn!(
            "--database-url holds a password, visible to every user of this machine; use OUTBOX_DATABASE_PASSWORD or OUTBOX_DATABASE_PASSWORD_FILE"
        );
    }
    RelayConfig::load(
        global.config.as_deref(),
        Overrides {
            database_url: global.database_url,
            bootstrap_servers: global.bootstrap_servers,
            http_listen: global.http_listen,
            table_prefix: global.table_prefix,
            registry_listen: global.registry_listen,
            kafka_properties,
        },
    )
}

/// SIGINT or SIGTERM. The handlers are installed when this is called (not when the future is
/// first polled), so a signal during start-up is not lost.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let interrupt = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        let terminate = async move {
            match terminate {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = interrupt => {},
            () = terminate => {},
        }
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode, Error> {
    // Only `run` handles signals; other commands stop on Ctrl-C as usual.
    let shutdown = matches!(cli.command, Command::Run | Command::Registry(_)).then(shutdown_signal);
    let config = load_config(cli.global)?;
    let url = config.database_url()?.to_owned();
    match cli.command {
        Command::Schema(
            SchemaCommand::Check { .. }
            | SchemaCommand::Lint { .. }
            | SchemaCommand::Codegen { .. },
        ) => {
            unreachable!("handled before the runtime")
        }
        Command::Run => {
            let Some(shutdown) = shutdown else {
                unreachable!("created for run")
            };
            let summary = with_database!(&url, |pool: DB| ops::run::<DB>(pool, &config, shutdown)
                .await)?;
            tracing::info!(
                published = summary.published,
                dead_lettered = summary.dead_lettered,
                "relay stopped"
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Registry(RegistryCommand::Serve { read_only }) => {
            let Some(shutdown) = shutdown else {
                unreachable!("created for registry serve")
            };
            let mut config = config;
            config.registry.read_only |= read_only;
            with_database!(&url, |pool: DB| {
                ops::registry_serve::<DB>(pool, &config, shutdown).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            with_database!(&url, |pool: DB| ops::migrate::<DB>(&pool, &config).await)?;
            println!("outbox tables are up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => {
            print!(
                "{}",
                with_database!(&url, |pool: DB| ops::status::<DB>(pool, &config).await)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema(SchemaCommand::Register { subject, file }) => {
            let text = std::fs::read_to_string(&file).map_err(|e| Error::InvalidConfig {
                key: "FILE".to_owned(),
                reason: format!("cannot read {}: {e}", file.display()),
            })?;
            let schema = Schema::parse_str(&text)?;
            let registered = match with_database!(&url, |pool: DB| {
                ops::schema_register::<DB>(pool, &config, &subject, &schema).await
            }) {
                Err(e @ (Error::IncompatibleSchema { .. } | Error::LintFailed { .. })) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::FAILURE);
                }
                other => other?,
            };
            println!(
                "registered {} version {} with id {}",
                registered.subject, registered.version, registered.id
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema(SchemaCommand::List { subject }) => {
            print!(
                "{}",
                with_database!(&url, |pool: DB| ops::schema_list::<DB>(
                    pool,
                    &config,
                    subject.as_deref()
                )
                .await)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema(SchemaCommand::Get {
            subject,
            version,
            id,
        }) => {
            print!(
                "{}",
                with_database!(&url, |pool: DB| {
                    ops::schema_get::<DB>(pool, &config, subject.as_deref(), version, id).await
                })?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::DeadLetters(DeadLetterCommand::List { limit, format }) => {
            let json = format == Format::Json;
            print!(
                "{}",
                with_database!(&url, |pool: DB| ops::dead_letters_list::<DB>(
                    pool, &config, limit, json
                )
                .await)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::DeadLetters(
            command @ (DeadLetterCommand::Retry { .. } | DeadLetterCommand::Discard { .. }),
        ) => {
            let (ids, retry) = match command {
                DeadLetterCommand::Retry {
                    key: Some(key),
                    topic,
                    ..
                } => {
                    let retried =
                        with_database!(&url, |pool: DB| ops::dead_letters_retry_key::<DB>(
                            pool,
                            &config,
                            &key,
                            topic.as_deref()
                        )
                        .await)?;
                    if retried.is_empty() {
                        eprintln!("error: no dead letter with key {key:?}");
                        return Ok(ExitCode::FAILURE);
                    }
                    let retried: Vec<String> = retried.iter().map(i64::to_string).collect();
                    println!("retried: {}", retried.join(", "));
                    return Ok(ExitCode::SUCCESS);
                }
                DeadLetterCommand::Retry { ids, .. } => (ids, true),
                DeadLetterCommand::Discard { ids } => (ids, false),
                DeadLetterCommand::List { .. } => unreachable!("matched above"),
            };
            let missing = with_database!(&url, |pool: DB| ops::dead_letters_apply::<DB>(
                pool, &config, &ids, retry
            )
            .await)?;
            let verb = if retry { "retried" } else { "discarded" };
            let done: Vec<String> = ids
                .iter()
                .filter(|id| !missing.contains(id))
                .map(i64::to_string)
                .collect();
            if !done.is_empty() {
                println!("{verb}: {}", done.join(", "));
            }
            if missing.is_empty() {
                Ok(ExitCode::SUCCESS)
            } else {
                let missing: Vec<String> = missing.iter().map(i64::to_string).collect();
                eprintln!("error: no dead letter with id {}", missing.join(", "));
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
