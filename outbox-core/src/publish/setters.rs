//! The setters every writer's builder has, written once and expanded as inherent methods (so
//! users call them without importing a trait, as on sqlx's `PgPoolOptions`).

/// Expands, inside an `impl` block of a builder holding an [`OutboxOptions`] in field
/// `$options`, the builder's setters. Each setter consumes and returns the builder.
///
/// The setters' doc links use `outbox_core::` paths (see `extern crate self` in `lib.rs`).
///
/// [`OutboxOptions`]: crate::publish::OutboxOptions
#[doc(hidden)]
#[macro_export]
macro_rules! outbox_builder_setters {
    ($options:ident) => {
        /// Uses these table names (default: `outbox_*`).
        #[must_use]
        pub fn table_names(mut self, names: $crate::table::TableNames) -> Self {
            self.$options.table_names = names;
            self
        }

        /// Registers an event type at start-up: its schema is registered (or found) under its
        /// subject and checked for compatibility. Register every type you publish.
        #[must_use]
        pub fn register<E: $crate::Event + 'static>(mut self) -> Self {
            self.$options
                .event_types
                .push($crate::publish::EventType::of::<E>());
            self
        }

        /// How subjects are named (default: `<topic>-value`).
        #[must_use]
        pub fn subject_name_strategy(
            mut self,
            strategy: $crate::registry::SubjectNameStrategy,
        ) -> Self {
            self.$options.subject_name_strategy = strategy;
            self
        }

        /// The compatibility mode for subjects with no setting of their own and no global
        /// setting in the database (default: `FULL_TRANSITIVE`).
        #[must_use]
        pub fn default_compatibility(mut self, mode: $crate::compat::CompatibilityMode) -> Self {
            self.$options.default_compatibility = mode;
            self
        }

        /// The payload format (default: Avro in Confluent framing).
        #[must_use]
        pub fn payload_format(mut self, format: $crate::encode::PayloadFormat) -> Self {
            self.$options.payload_format = format;
            self
        }

        /// The largest encoded record accepted, key + value + headers (default 1 MiB, Kafka's
        /// broker default); larger events are refused at publish. The relay's producer accepts
        /// records up to 1 MiB plus the CloudEvents headers; raise its `message.max.bytes` (and
        /// the broker's) to match a larger limit.
        #[must_use]
        pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
            self.$options.max_payload_bytes = bytes;
            self
        }

        /// Whether publishing a type not registered at start-up registers it on first use
        /// instead of failing with [`outbox_core::Error::UnregisteredEvent`]. Off by default:
        /// schema changes belong to start-up.
        #[must_use]
        pub fn auto_register(mut self, on: bool) -> Self {
            self.$options.auto_register = on;
            self
        }

        /// PostgreSQL: also `NOTIFY` the relays' channel in every publishing transaction, so a
        /// relay with `listen_notify` wakes at commit instead of at its next poll. Off by
        /// default: NOTIFY takes a cluster-wide lock at commit, which serializes committing
        /// transactions. Ignored on other databases.
        #[must_use]
        pub fn notify_relay(mut self, on: bool) -> Self {
            self.$options.notify_relay = on;
            self
        }

        /// Registers schemas with a remote Confluent-compatible registry instead of the
        /// embedded tables. Ids are cached at start-up, so publishing makes no network call.
        #[must_use]
        pub fn schema_registry(mut self, registry: $crate::registry::RemoteRegistryConfig) -> Self {
            self.$options.schema_registry = Some(registry);
            self
        }

        /// Runs the schema linter ([`outbox_core::lint`]) on every new schema registered: at
        /// [`LintLevel::Deny`](outbox_core::lint::LintLevel::Deny) a schema with an
        /// error-severity violation is refused ([`outbox_core::Error::LintFailed`]), at
        /// [`LintLevel::Warn`](outbox_core::lint::LintLevel::Warn) violations are logged.
        /// Schemas already registered are never refused. Default:
        /// [`LintLevel::Allow`](outbox_core::lint::LintLevel::Allow) (no linting).
        #[must_use]
        pub fn lint(mut self, level: $crate::lint::LintLevel) -> Self {
            self.$options.lint_level = level;
            self
        }

        /// The linter's rules and thresholds (default:
        /// [`LintConfig::default`](outbox_core::lint::LintConfig::default)), for example
        /// [`LintConfig::from_file`](outbox_core::lint::LintConfig::from_file).
        #[must_use]
        pub fn lint_config(mut self, config: $crate::lint::LintConfig) -> Self {
            self.$options.lint_config = config;
            self
        }

        /// Whether building creates or upgrades the tables (default: yes).
        #[must_use]
        pub fn run_migrations(mut self, on: bool) -> Self {
            self.$options.run_migrations = on;
            self
        }

        /// The options set so far.
        pub fn options(&self) -> &$crate::publish::OutboxOptions {
            &self.$options
        }
    };
}

#[cfg(test)]
// The test builder uses a few setters, privately.
#[allow(unreachable_pub, dead_code)]
mod tests {
    use crate::compat::CompatibilityMode;
    use crate::publish::OutboxOptions;
    use crate::table::TableNames;

    /// A builder as a writer declares one.
    struct Builder {
        options: OutboxOptions,
    }

    impl Builder {
        crate::outbox_builder_setters!(options);
    }

    #[derive(serde::Serialize, apache_avro::AvroSchema)]
    struct Placed {
        id: String,
    }

    impl crate::Event for Placed {
        const TOPIC: &'static str = "placed";
    }

    #[test]
    fn every_setter_lands_in_the_options() {
        let names = TableNames::with_prefix("billing_outbox").expect("prefix");
        let built = Builder {
            options: OutboxOptions::default(),
        }
        .table_names(names.clone())
        .register::<Placed>()
        .default_compatibility(CompatibilityMode::Backward)
        .max_payload_bytes(7)
        .auto_register(true)
        .notify_relay(true)
        .run_migrations(false);
        let options = built.options();
        assert_eq!(options.table_names, names);
        assert_eq!(options.event_types.len(), 1);
        assert_eq!(options.event_types[0].topic(), "placed");
        assert_eq!(options.default_compatibility, CompatibilityMode::Backward);
        assert_eq!(options.max_payload_bytes, 7);
        assert!(options.auto_register && options.notify_relay && !options.run_migrations);
    }
}
