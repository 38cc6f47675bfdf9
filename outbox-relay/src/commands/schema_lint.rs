//! `outbox-relay schema lint`: schemas against the design rules, from files.

use std::path::{Path, PathBuf};

use super::{CommandError, Outcome};
use crate::cli::Format;
use crate::config::RelayConfig;
use crate::schema_check::InputError;
use crate::schema_lint::LintInput;

/// Prints the violations; [`Outcome::Failure`] when a rule of error severity (or, with
/// `deny_warnings`, any rule) is broken.
///
/// The rules come from `lint_config`, else from the `[registry] lint_config` of the relay
/// configuration (`--config` or `OUTBOX_CONFIG`), so CI lints with the rules the registry
/// enforces, else the defaults.
pub(super) fn lint(
    format: Format,
    topic: Option<&str>,
    lint_config: Option<&Path>,
    relay_config: Option<&Path>,
    deny_warnings: bool,
    files: &[PathBuf],
) -> Result<Outcome, CommandError> {
    let from_relay = match (lint_config, relay_config) {
        (None, Some(path)) => {
            RelayConfig::from_file(path)
                .map_err(InputError::Config)?
                .registry
                .lint_config
        }
        _ => None,
    };
    let config = lint_config.or(from_relay.as_deref());
    let outcome = LintInput::load(topic, config, files)?.lint();
    match format {
        Format::Text => print!("{}", outcome.render_text()),
        Format::Json => println!("{}", outcome.render_json(deny_warnings)),
    }
    Ok(if outcome.passes(deny_warnings) {
        Outcome::Success
    } else {
        Outcome::Failure
    })
}
