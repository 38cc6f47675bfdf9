//! `outbox-relay schema lint`: do schemas follow the design rules for events?

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use outbox_core::Schema;
use outbox_core::lint::{LintConfig, LintContext, LintReport, Severity, lint};

use crate::schema_check::{InputError, read_schema};

/// The schemas of one lint run, as read from files, with the configuration.
#[derive(Debug)]
pub struct LintInput {
    /// The stream the schemas belong to (`--topic`), if any.
    pub topic: Option<String>,
    /// The rules.
    pub config: LintConfig,
    /// Each file and its schema, in the order given (a stream's versions, oldest first).
    pub files: Vec<(PathBuf, Schema)>,
}

/// What a lint run found, file by file.
#[derive(Debug)]
pub struct LintOutcome {
    /// Each file with its report, in the order given.
    pub reports: Vec<(PathBuf, LintReport)>,
}

impl LintOutcome {
    /// Violations of each severity over all files.
    pub fn count(&self, severity: Severity) -> usize {
        self.reports
            .iter()
            .flat_map(|(_, r)| &r.violations)
            .filter(|v| v.severity == severity)
            .count()
    }

    /// Whether the run passes: no error, and no warning either when `deny_warnings`.
    pub fn passes(&self, deny_warnings: bool) -> bool {
        self.count(Severity::Error) == 0 && (!deny_warnings || self.count(Severity::Warning) == 0)
    }
}

impl LintInput {
    /// Reads the configuration (if any) and every schema file.
    ///
    /// # Errors
    ///
    /// [`InputError`] for an unreadable, oversized or invalid configuration or schema file.
    pub fn load(
        topic: Option<&str>,
        config: Option<&Path>,
        files: &[PathBuf],
    ) -> Result<Self, InputError> {
        let config = match config {
            Some(path) => LintConfig::from_file(path).map_err(InputError::Config)?,
            None => LintConfig::default(),
        };
        let files = files
            .iter()
            .map(|p| Ok((p.clone(), read_schema(p)?)))
            .collect::<Result<_, InputError>>()?;
        Ok(Self {
            topic: topic.map(str::to_owned),
            config,
            files,
        })
    }

    /// Lints every file. With a topic, each file is a version of that stream: the record
    /// names of the files before it are the types the stream already carries.
    pub fn lint(&self) -> LintOutcome {
        let mut stream_types: Vec<String> = Vec::new();
        let reports = self
            .files
            .iter()
            .map(|(path, schema)| {
                let context = match &self.topic {
                    Some(topic) => {
                        LintContext::for_topic(topic).with_stream_types(stream_types.clone())
                    }
                    None => LintContext::default(),
                };
                let report = lint(schema, &context, &self.config);
                if let Some(name) = schema.full_name()
                    && !stream_types.contains(&name)
                {
                    stream_types.push(name);
                }
                (path.clone(), report)
            })
            .collect();
        LintOutcome { reports }
    }
}

impl LintOutcome {
    /// The findings for a person: per file a headline, then one line per violation with its
    /// fix below it.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for (path, report) in &self.reports {
            if report.is_clean() {
                let _ = writeln!(out, "clean: {}", path.display());
                continue;
            }
            let errors = report
                .violations
                .iter()
                .filter(|v| v.severity == Severity::Error)
                .count();
            let warnings = report.violations.len() - errors;
            let _ = writeln!(
                out,
                "{}: {errors} error{}, {warnings} warning{}",
                path.display(),
                plural(errors),
                plural(warnings)
            );
            for v in &report.violations {
                let _ = writeln!(
                    out,
                    "  {} {} at {}: {}\n    fix: {}",
                    v.severity, v.rule, v.location, v.message, v.fix
                );
            }
        }
        out
    }

    /// The findings as one JSON document.
    pub fn render_json(&self, deny_warnings: bool) -> String {
        let files: Vec<serde_json::Value> = self
            .reports
            .iter()
            .map(|(path, report)| {
                serde_json::json!({
                    "file": path.display().to_string(),
                    "violations": report.violations,
                })
            })
            .collect();
        serde_json::json!({
            "passed": self.passes(deny_warnings),
            "errors": self.count(Severity::Error),
            "warnings": self.count(Severity::Warning),
            "files": files,
        })
        .to_string()
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
