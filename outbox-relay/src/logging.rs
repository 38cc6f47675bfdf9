//! The binary's logs: lines for a person (colours only when stderr is a terminal), or one JSON
//! object per line for log shippers. Logs go to stderr; the level comes from `RUST_LOG`.

use std::io::IsTerminal;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines; ANSI colours only on a terminal.
    #[default]
    Text,
    /// One JSON object per event (`timestamp`, `level`, `target`, `fields`).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = outbox_core::Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(outbox_core::Error::InvalidConfig {
                key: "log_format".to_owned(),
                reason: format!("{text:?} is not text or json"),
            }),
        }
    }
}

/// Installs the global subscriber; `default_level` applies when `RUST_LOG` is unset or
/// malformed. A second call does nothing.
pub fn init(format: LogFormat, default_level: &str) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // At trace, ureq-proto hex-dumps every request it sends, the remote registry's
    // Authorization header included; `RUST_LOG=trace` must not print credentials.
    for cap in ["ureq_proto=debug"] {
        if let Ok(directive) = cap.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}
