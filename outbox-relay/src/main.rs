//! The `outbox-relay` binary: parses the command line, calls the library, maps exit codes.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use outbox_relay::schema_check::CheckInput;

use cli::{Cli, Command, Format, SchemaCommand};

/// Exit code for invalid input (as clap uses for usage errors).
const EXIT_INVALID_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Schema(SchemaCommand::Check {
            mode,
            format,
            new,
            existing,
        }) => {
            let input = match CheckInput::load(&mode, &new, &existing) {
                Ok(input) => input,
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
    }
}
