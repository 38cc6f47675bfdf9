//! The `outbox-relay` binary: parses the command line, calls the library, maps exit codes.

use std::process::ExitCode;

use clap::Parser;
use outbox_relay::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    outbox_relay::logging::init(cli.global.log_format, cli.command.default_log_level());
    match outbox_relay::commands::execute(cli) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
