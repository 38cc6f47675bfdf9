//! `outbox-relay schema check`: a new schema against existing ones, from files.

use std::path::{Path, PathBuf};

use super::{CommandError, Outcome};
use crate::cli::Format;
use crate::schema_check::CheckInput;

/// Prints the report; [`Outcome::Failure`] when incompatible.
pub(super) fn check(
    mode: &str,
    format: Format,
    topic: Option<&str>,
    new: &Path,
    existing: &[PathBuf],
) -> Result<Outcome, CommandError> {
    let input = CheckInput::load(mode, new, existing)?.with_topic(topic);
    let report = input.check();
    match format {
        Format::Text => print!("{}", input.render_text(&report)),
        Format::Json => println!("{}", input.render_json(&report)),
    }
    Ok(if report.is_compatible() {
        Outcome::Success
    } else {
        Outcome::Failure
    })
}
