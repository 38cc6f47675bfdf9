//! The registration decision as a pure function, so every back end runs the same rules.

use super::RegisteredSchema;
use crate::compat::{CompatibilityMode, CompatibilityReport, check_compatibility};
use crate::schema::Schema;
use crate::schema::limits::MAX_VERSIONS_PER_SUBJECT;
use crate::{Error, Result};

/// What registering a schema under a subject comes to, given the subject's versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationPlan {
    /// The identical schema is already a version of the subject: nothing to store.
    Existing(RegisteredSchema),
    /// Store the schema as this new version.
    Insert {
        /// The version number to store it as.
        version: u32,
    },
}

/// Decides a registration: the existing version when the schema is already registered, else
/// a compatibility check against `versions` (oldest first) under `mode`.
///
/// # Errors
///
/// [`Error::IncompatibleSchema`] with every incompatibility when the check fails.
pub fn plan_registration(
    subject: &str,
    schema: &Schema,
    versions: &[RegisteredSchema],
    mode: CompatibilityMode,
) -> Result<RegistrationPlan> {
    if let Some(existing) = versions.iter().find(|v| v.schema == *schema) {
        return Ok(RegistrationPlan::Existing(existing.clone()));
    }
    if versions.len() >= MAX_VERSIONS_PER_SUBJECT {
        return Err(Error::InvalidSchema {
            reason: format!(
                "subject {subject} already has {} versions, the limit",
                versions.len()
            ),
        });
    }
    let report = check_against(mode, schema, versions);
    if !report.is_compatible() {
        return Err(Error::IncompatibleSchema {
            subject: subject.to_owned(),
            mode,
            problems: report.problems,
        });
    }
    let version = versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
    Ok(RegistrationPlan::Insert { version })
}

/// The compatibility report of `schema` against `versions` under `mode`.
pub(super) fn check_against(
    mode: CompatibilityMode,
    schema: &Schema,
    versions: &[RegisteredSchema],
) -> CompatibilityReport {
    let history: Vec<Schema> = versions.iter().map(|v| v.schema.clone()).collect();
    check_compatibility(mode, schema, &history)
}
