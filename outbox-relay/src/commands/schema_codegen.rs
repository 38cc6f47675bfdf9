//! `outbox-relay schema codegen`: Rust types from schema files.

use std::path::{Path, PathBuf};

use outbox_core::codegen::Codegen;

use super::{CommandError, Outcome};

/// Writes the generated code to `out`, or prints it.
pub(super) fn codegen(
    out: Option<&Path>,
    topic: Option<&str>,
    key: Option<&str>,
    files: &[PathBuf],
) -> Result<Outcome, CommandError> {
    let codegen = files.iter().try_fold(Codegen::new(), |codegen, file| {
        let codegen = codegen.file(file)?;
        Ok::<_, CommandError>(match topic {
            Some(topic) => codegen.event(topic, key.unwrap_or_default()),
            None => codegen,
        })
    })?;
    match out {
        Some(path) => codegen.write(path)?,
        None => print!("{}", codegen.generate()?),
    }
    Ok(Outcome::Success)
}
