//! The `outbox-relay` commands, one file each, and [`execute`], which runs the one the
//! command line names.
//!
//! The configuration is read once into [`Settings`] before a database command runs; the
//! file-only commands (`schema check`, `lint`, `codegen`) need no configuration.

mod capture;
mod dead_letters;
mod error;
mod liberate;
mod liberate_metrics;
mod migrate;
mod registry;
mod run;
mod schema;
mod schema_check;
mod schema_codegen;
mod schema_lint;
mod status;

use crate::cli::{Cli, Command, RegistryCommand, SchemaCommand};
use crate::settings::Settings;
use crate::with_database;

pub use error::{CommandError, Outcome};
pub use migrate::migrate;
pub use run::run;

/// Runs the command `cli` names, on a new runtime when it needs one.
///
/// # Errors
///
/// [`CommandError`], whose [`CommandError::exit_code`] tells invalid input (2) from other
/// failures (1).
pub fn execute(cli: Cli) -> Result<Outcome, CommandError> {
    match cli.command {
        Command::Schema(SchemaCommand::Check {
            mode,
            format,
            topic,
            new,
            existing,
        }) => schema_check::check(&mode, format, topic.as_deref(), &new, &existing),
        Command::Schema(SchemaCommand::Lint {
            format,
            topic,
            lint_config,
            deny_warnings,
            files,
        }) => schema_lint::lint(
            format,
            topic.as_deref(),
            lint_config.as_deref(),
            cli.global.config.as_deref(),
            deny_warnings,
            &files,
        ),
        Command::Schema(SchemaCommand::Codegen {
            out,
            topic,
            key,
            files,
        }) => schema_codegen::codegen(out.as_deref(), topic.as_deref(), key.as_deref(), &files),
        command => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(CommandError::Runtime)?;
            runtime.block_on(async {
                // Only the long-running commands handle signals; others stop on Ctrl-C as
                // usual. Installed before the configuration is read, so no signal is lost.
                let shutdown = matches!(
                    command,
                    Command::Run | Command::Registry(_) | Command::Liberate(_)
                )
                .then(shutdown_signal);
                let settings =
                    Settings::load(cli.global.config.as_deref(), cli.global.overrides()?)?;
                database_command(command, settings, shutdown).await
            })
        }
    }
}

/// The commands that work on the database.
async fn database_command(
    command: Command,
    mut settings: Settings,
    shutdown: Option<impl Future<Output = ()> + Send + 'static>,
) -> Result<Outcome, CommandError> {
    let shutdown = async move {
        match shutdown {
            Some(signal) => signal.await,
            None => std::future::pending().await,
        }
    };
    let url = settings.database_url().to_owned();
    match command {
        Command::Run => {
            let summary =
                with_database!(&url, |pool: DB| run::run::<DB>(pool, &settings, shutdown)
                    .await)?;
            tracing::info!(
                published = summary.published,
                dead_lettered = summary.dead_lettered,
                "relay stopped"
            );
            Ok(Outcome::Success)
        }
        Command::Registry(RegistryCommand::Serve { read_only }) => {
            settings.registry.read_only |= read_only;
            with_database!(&url, |pool: DB| registry::serve::<DB>(
                pool, &settings, shutdown
            )
            .await)?;
            Ok(Outcome::Success)
        }
        Command::Migrate => {
            with_database!(&url, |pool: DB| migrate::migrate::<DB>(&pool, &settings)
                .await)?;
            println!("outbox tables are up to date");
            Ok(Outcome::Success)
        }
        Command::Status => {
            let text =
                with_database!(&url, |pool: DB| status::status::<DB>(pool, &settings).await)?;
            print!("{text}");
            Ok(Outcome::Success)
        }
        Command::Schema(command) => {
            with_database!(&url, |pool: DB| schema::execute::<DB>(
                pool, &settings, command
            )
            .await)
        }
        Command::Capture(command) => {
            with_database!(&url, |pool: DB| capture::execute::<DB>(
                pool, &settings, command
            )
            .await)
        }
        Command::Liberate(command) => {
            with_database!(&url, |pool: DB| liberate::execute::<DB>(
                pool, &settings, command, shutdown
            )
            .await)
        }
        Command::DeadLetters(command) => {
            with_database!(&url, |pool: DB| dead_letters::execute::<DB>(
                pool, &settings, command
            )
            .await)
        }
    }
}

/// SIGINT or SIGTERM. The handlers are installed when this is called (not when the future is
/// first polled), so a signal during start-up is not lost.
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
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
