//! `liberate --metrics-file`: a load's progress as Prometheus metrics, in the text format a
//! node_exporter textfile collector (or any scraper of files) reads. A liberation is a batch
//! job without a port of its own; the file is its metrics endpoint.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use outbox_core::{Error, Result};
use outbox_sqlx::liberate::Progress;
use prometheus::{Encoder as _, GaugeVec, Opts, Registry, TextEncoder};

/// How often the file is rewritten while a load runs (and once more at its end).
const EVERY: Duration = Duration::from_secs(1);

/// Writes a liberation's figures to a file, through a temporary file renamed over it, so a
/// reader never sees half a file.
#[derive(Debug)]
pub(super) struct MetricsFile {
    path: PathBuf,
    table: String,
    mode: String,
    written: Option<Instant>,
    failed: bool,
}

impl MetricsFile {
    /// A metrics file at `path` for the load of `table` in `mode`, written once now so a path
    /// that cannot be written is refused before the load starts.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] (key `metrics_file`) when the file cannot be written.
    pub(super) fn create(path: &Path, table: &str, mode: &str) -> Result<Self> {
        let mut file = Self {
            path: path.to_owned(),
            table: table.to_owned(),
            mode: mode.to_owned(),
            written: None,
            failed: false,
        };
        file.write(&Progress::default())
            .map_err(|e| Error::InvalidConfig {
                key: "metrics_file".to_owned(),
                reason: format!("cannot write {}: {e}", path.display()),
            })?;
        // The first progress report (with the row estimate) is written at once.
        file.written = None;
        Ok(file)
    }

    /// Rewrites the file with `p` when the last write is older than a second (or `force`).
    /// A failure is logged once and never stops the load.
    pub(super) fn update(&mut self, p: &Progress, force: bool) {
        if !force && self.written.is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        if let Err(e) = self.write(p) {
            if !self.failed {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot write the metrics file");
            }
            self.failed = true;
        }
    }

    fn write(&mut self, p: &Progress) -> std::io::Result<()> {
        let text = render(&self.table, &self.mode, p).map_err(std::io::Error::other)?;
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.path)?;
        self.written = Some(Instant::now());
        Ok(())
    }
}

/// The figures of `p` in Prometheus's text format, labelled with the table and the mode.
fn render(table: &str, mode: &str, p: &Progress) -> prometheus::Result<String> {
    let registry = Registry::new();
    let figures: [(&str, &str, f64); 7] = [
        (
            "outbox_liberate_rows_done",
            "Rows this liberation wrote to the outbox, earlier runs included.",
            p.rows_done as f64,
        ),
        (
            "outbox_liberate_rows_this_run",
            "Rows this run wrote to the outbox.",
            p.rows_this_run as f64,
        ),
        (
            "outbox_liberate_rows_estimated",
            "The table's row count when the run started.",
            p.total_estimate as f64,
        ),
        (
            "outbox_liberate_rows_per_second",
            "This run's rate.",
            p.rate(),
        ),
        (
            "outbox_liberate_seconds_left",
            "Time left at this run's rate (0 when unknown or done).",
            p.time_left().map_or(0.0, |d| d.as_secs_f64()),
        ),
        (
            "outbox_liberate_chunks",
            "Chunks (transactions) this run committed.",
            p.chunks as f64,
        ),
        (
            "outbox_liberate_queries",
            "Statements this run sent to the source database.",
            p.queries as f64,
        ),
    ];
    for (name, help, value) in figures {
        let gauge = GaugeVec::new(Opts::new(name, help), &["table", "mode"])?;
        gauge.with_label_values(&[table, mode]).set(value);
        registry.register(Box::new(gauge))?;
    }
    let mut out = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut out)?;
    String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_render_with_escaped_labels() {
        let p = Progress {
            rows_done: 3000,
            rows_this_run: 2000,
            total_estimate: 10_000,
            chunks: 2,
            queries: 10,
            elapsed: Duration::from_secs(2),
        };
        let text = render("odd\"table\\name\n", "incremental updated_at,id", &p).expect("render");
        assert!(
            text.contains(
                "outbox_liberate_rows_done{mode=\"incremental updated_at,id\",table=\"odd\\\"table\\\\name\\n\"} 3000"
            ),
            "{text}"
        );
        assert!(text.contains("outbox_liberate_rows_per_second{"), "{text}");
        assert!(text.contains("} 1000\n"), "{text}");
        assert!(text.contains("outbox_liberate_seconds_left{"), "{text}");
    }

    #[test]
    fn an_unwritable_path_is_refused_before_the_load() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("no-such-dir").join("liberate.prom");
        let err = MetricsFile::create(&path, "orders", "bulk").expect_err("refused");
        assert!(
            matches!(&err, Error::InvalidConfig { key, .. } if key == "metrics_file"),
            "{err}"
        );
        let ok = dir.path().join("liberate.prom");
        let mut file = MetricsFile::create(&ok, "orders", "bulk").expect("writable");
        file.update(
            &Progress {
                rows_done: 7,
                ..Progress::default()
            },
            true,
        );
        let text = std::fs::read_to_string(&ok).expect("read");
        assert!(
            text.contains("outbox_liberate_rows_done{mode=\"bulk\",table=\"orders\"} 7"),
            "{text}"
        );
    }
}
