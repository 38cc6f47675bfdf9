//! [`Registry`]: registration, lookups and settings over a [`SchemaStore`].

use std::sync::Arc;

use super::plan::check_against;
use super::{RegisteredSchema, RegistrationPlan, SchemaStore, plan_registration};
use crate::compat::{CompatibilityMode, CompatibilityReport};
use crate::lint::{LintConfig, LintContext, LintLevel, LintReport, Severity, lint};
use crate::schema::Schema;
use crate::{Error, Result, SchemaId};

/// How many times a registration that lost a race re-reads the subject and tries again. Each
/// lost race means another registration succeeded, so this bounds the writers racing at once.
const REGISTER_ATTEMPTS: usize = 128;

/// A schema registry over a store.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use outbox_core::registry::{MemorySchemaStore, Registry};
/// use outbox_core::Schema;
///
/// let registry = Registry::new(MemorySchemaStore::default());
/// let v1 = Schema::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#)?;
/// let first = registry.register("orders-value", &v1).await?;
/// let again = registry.register("orders-value", &v1).await?;
/// assert_eq!((first.id, first.version), (again.id, again.version)); // idempotent
///
/// // Under the default FULL_TRANSITIVE, a new field without a default is refused.
/// let v2 = Schema::parse_str(r#"{"type":"record","name":"R","fields":[
///     {"name":"a","type":"int"},{"name":"b","type":"int"}]}"#)?;
/// assert!(registry.register("orders-value", &v2).await.is_err());
/// # Ok::<(), outbox_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Registry<S> {
    store: S,
    default_mode: CompatibilityMode,
    lint_level: LintLevel,
    lint_config: Arc<LintConfig>,
    on_lint: Option<LintObserver>,
}

/// Told the subject and the lint report of each new schema with violations, at
/// [`LintLevel::Warn`] and [`LintLevel::Deny`] (where a log line belongs: core does no logging).
pub type LintObserver = Arc<dyn Fn(&str, &LintReport) + Send + Sync>;

impl<S: std::fmt::Debug> std::fmt::Debug for Registry<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("store", &self.store)
            .field("default_mode", &self.default_mode)
            .field("lint_level", &self.lint_level)
            .field("lint_config", &self.lint_config)
            .field("on_lint", &self.on_lint.as_ref().map(|_| "observer"))
            .finish()
    }
}

impl<S: SchemaStore> Registry<S> {
    /// A registry whose mode, where neither the subject nor the store sets one, is
    /// [`CompatibilityMode::FullTransitive`].
    pub fn new(store: S) -> Self {
        Self {
            store,
            default_mode: CompatibilityMode::default(),
            lint_level: LintLevel::Allow,
            lint_config: Arc::default(),
            on_lint: None,
        }
    }

    /// Lints new schemas at registration: at [`LintLevel::Deny`], a schema with an
    /// error-severity violation is refused with [`Error::LintFailed`]; at [`LintLevel::Warn`]
    /// it is registered and the report goes to [`on_lint`](Self::on_lint). Schemas already
    /// registered are never refused, so existing writers keep starting.
    #[must_use]
    pub fn with_lint(mut self, level: LintLevel, config: LintConfig) -> Self {
        self.lint_level = level;
        self.lint_config = Arc::new(config);
        self
    }

    /// Calls `observer` with the report of each new schema that breaks a rule, at
    /// [`LintLevel::Warn`] (so the violations can be logged) and [`LintLevel::Deny`].
    #[must_use]
    pub fn on_lint(mut self, observer: impl Fn(&str, &LintReport) + Send + Sync + 'static) -> Self {
        self.on_lint = Some(Arc::new(observer));
        self
    }

    /// The lint level applied at registration.
    pub fn lint_level(&self) -> LintLevel {
        self.lint_level
    }

    /// Lints `schema` as a new version of `subject`, whose registered versions name the types
    /// its stream carries.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn lint(&self, subject: &str, schema: &Schema) -> Result<LintReport> {
        let versions = self.store.versions(subject).await?;
        Ok(self.lint_against(subject, schema, &versions))
    }

    fn lint_against(
        &self,
        subject: &str,
        schema: &Schema,
        versions: &[RegisteredSchema],
    ) -> LintReport {
        let context = LintContext::for_subject(subject)
            .with_stream_types(versions.iter().filter_map(|v| v.schema.full_name()));
        lint(schema, &context, &self.lint_config)
    }

    /// Changes the mode used where the store has neither a subject nor a global setting.
    #[must_use]
    pub fn with_default_mode(mut self, mode: CompatibilityMode) -> Self {
        self.default_mode = mode;
        self
    }

    /// The mode used where neither the subject nor the store sets one.
    pub fn default_mode(&self) -> CompatibilityMode {
        self.default_mode
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The mode in force for `subject`: its own, else the global one, else the default.
    ///
    /// # Errors
    ///
    /// Whatever the store returns.
    pub async fn effective_mode(&self, subject: &str) -> Result<CompatibilityMode> {
        if let Some(mode) = self.store.compatibility(Some(subject)).await? {
            return Ok(mode);
        }
        Ok(self
            .store
            .compatibility(None)
            .await?
            .unwrap_or(self.default_mode))
    }

    /// Registers `schema` under `subject`: returns the existing registration if it is already
    /// there, else checks compatibility (and, at [`LintLevel::Deny`], the design rules) and
    /// stores a new version. Safe to call concurrently
    /// from several processes: a lost race is retried against the winner's version.
    ///
    /// # Errors
    ///
    /// [`Error::IncompatibleSchema`] listing every incompatibility; [`Error::LintFailed`]
    /// listing every error-severity violation; store errors.
    pub async fn register(&self, subject: &str, schema: &Schema) -> Result<RegisteredSchema> {
        let mode = self.effective_mode(subject).await?;
        let mut last_conflict = None;
        for _ in 0..REGISTER_ATTEMPTS {
            let versions = self.store.versions(subject).await?;
            match plan_registration(subject, schema, &versions, mode)? {
                RegistrationPlan::Existing(existing) => return Ok(existing),
                RegistrationPlan::Insert { version } => {
                    if self.lint_level != LintLevel::Allow {
                        let report = self.lint_against(subject, schema, &versions);
                        if let Some(observer) = &self.on_lint
                            && !report.is_clean()
                        {
                            observer(subject, &report);
                        }
                        if self.lint_level == LintLevel::Deny && report.has_errors() {
                            return Err(Error::LintFailed {
                                subject: subject.to_owned(),
                                violations: report
                                    .violations
                                    .into_iter()
                                    .filter(|v| v.severity == Severity::Error)
                                    .collect(),
                            });
                        }
                    }
                    // Soft-deleted versions keep their numbers: never give one again.
                    let version = version.max(self.store.next_version(subject).await?);
                    match self.store.insert_version(subject, version, schema).await {
                        // A concurrent registration won, or a passing fault: re-read, retry.
                        Err(e) if e.is_retryable() => last_conflict = Some(e),
                        other => return other,
                    }
                }
            }
        }
        Err(last_conflict.unwrap_or_else(|| Error::Conflict {
            what: format!("subject {subject}"),
        }))
    }

    /// Checks `schema` against `subject` under its mode without registering it.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn check(&self, subject: &str, schema: &Schema) -> Result<CompatibilityReport> {
        let mode = self.effective_mode(subject).await?;
        let versions = self.store.versions(subject).await?;
        Ok(check_against(mode, schema, &versions))
    }

    /// The registration of `schema` under `subject`, if it is registered there.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn lookup(&self, subject: &str, schema: &Schema) -> Result<Option<RegisteredSchema>> {
        self.store.find(subject, schema).await
    }

    /// A version of a subject; `None` asks for the latest.
    ///
    /// # Errors
    ///
    /// [`Error::SubjectNotFound`], [`Error::VersionNotFound`], store errors.
    pub async fn version(&self, subject: &str, version: Option<u32>) -> Result<RegisteredSchema> {
        if let Some(found) = self.store.version(subject, version).await? {
            return Ok(found);
        }
        match version {
            Some(version) if !self.store.version_numbers(subject).await?.is_empty() => {
                Err(Error::VersionNotFound {
                    subject: subject.to_owned(),
                    version,
                })
            }
            _ => Err(Error::SubjectNotFound {
                subject: subject.to_owned(),
            }),
        }
    }

    /// The schema with a global id.
    ///
    /// # Errors
    ///
    /// [`Error::SchemaNotFound`], store errors.
    pub async fn schema_by_id(&self, id: SchemaId) -> Result<Schema> {
        self.store
            .schema_by_id(id)
            .await?
            .ok_or(Error::SchemaNotFound { id })
    }

    /// Every subject, sorted.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn subjects(&self) -> Result<Vec<String>> {
        self.store.subjects().await
    }

    /// Sets or (with `None`) clears the compatibility mode of a subject, or the global one.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn set_compatibility(
        &self,
        subject: Option<&str>,
        mode: Option<CompatibilityMode>,
    ) -> Result<()> {
        self.store.set_compatibility(subject, mode).await
    }
}
