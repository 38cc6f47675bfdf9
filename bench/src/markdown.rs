//! The written report (BENCHMARKS.md): the command, the machine and versions, the figures with
//! their spread and targets, the pictures, then the hand-kept prose of `bench/NOTES.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::environment::Environment;
use crate::report::Report;
use crate::targets::{TARGETS, target_for, verdict};

/// What the phases do, what the baselines do, limits: kept by hand, without numbers (every
/// number in the report comes from the run).
const NOTES: &str = include_str!("../NOTES.md");

/// How the run was made, for the report's head.
#[derive(Debug)]
pub(crate) struct Run<'a> {
    /// The command as typed (`cargo run --release -p outbox-bench -- ...`).
    pub(crate) command: &'a str,
    pub(crate) quick: bool,
    pub(crate) runs: usize,
    pub(crate) elapsed: Duration,
}

/// Where the report and its pictures go, as absolute paths.
#[derive(Debug)]
pub(crate) struct Outputs {
    pub(crate) markdown: PathBuf,
    pub(crate) svg_dir: PathBuf,
}

impl Outputs {
    /// Creates the directories (the pictures' default is `benchmarks/` beside the report), so
    /// a path that cannot be written fails before the phases run.
    ///
    /// # Errors
    ///
    /// A report path with no file name, or a directory that cannot be created.
    pub(crate) fn prepare(markdown: &Path, svg_dir: Option<&Path>) -> anyhow::Result<Self> {
        let name = markdown
            .file_name()
            .with_context(|| format!("--markdown {}: not a file name", markdown.display()))?;
        let parent = match markdown.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let absolute = |dir: &Path| {
            std::fs::create_dir_all(dir)
                .and_then(|()| dir.canonicalize())
                .with_context(|| format!("creating {}", dir.display()))
        };
        let parent = absolute(parent)?;
        let svg_dir =
            absolute(&svg_dir.map_or_else(|| parent.join("benchmarks"), Path::to_path_buf))?;
        Ok(Self {
            markdown: parent.join(name),
            svg_dir,
        })
    }

    /// The report's own files, which a dirty-tree check leaves out.
    pub(crate) fn paths(&self) -> Vec<&Path> {
        vec![&self.markdown, &self.svg_dir]
    }

    /// Draws every picture and writes the report, its pictures linked relative to it.
    /// Returns the pictures' paths.
    ///
    /// # Errors
    ///
    /// A picture that cannot be drawn or a file that cannot be written.
    pub(crate) fn write(
        &self,
        report: &Report,
        environment: &Environment,
        run: &Run<'_>,
    ) -> anyhow::Result<Vec<PathBuf>> {
        let mut pictures = Vec::new();
        let mut links = Vec::new();
        for plot in &report.plots {
            let path = crate::plot::draw(plot, &self.svg_dir)?;
            links.push((plot.title().to_owned(), link(&self.markdown, &path)));
            pictures.push(path);
        }
        let text = render(report, environment, run, &links);
        std::fs::write(&self.markdown, text)
            .with_context(|| format!("writing {}", self.markdown.display()))?;
        Ok(pictures)
    }
}

/// The picture's path as the report links it: relative to the report's directory when it is
/// below it.
fn link(markdown: &Path, picture: &Path) -> String {
    let relative = markdown
        .parent()
        .and_then(|dir| picture.strip_prefix(dir).ok())
        .unwrap_or(picture);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
        .replace("//", "/")
}

/// The report's text; `pictures` are `(title, link)`.
pub(crate) fn render(
    report: &Report,
    environment: &Environment,
    run: &Run<'_>,
    pictures: &[(String, String)],
) -> String {
    let mut out = String::new();
    let runs = if run.runs == 1 {
        "one run of each phase".to_owned()
    } else {
        format!("{} runs of each phase that repeats", run.runs)
    };
    let mode = if run.quick {
        "quick (small counts: the figures show the harness works, they are not measurements)"
    } else {
        "full"
    };
    // `writeln!` into a String cannot fail.
    let _ = writeln!(
        out,
        "# Benchmarks\n\n\
         Every figure is measured beside its baseline in the same run, on the same database and\n\
         broker, so a noisy machine moves both. This file and its pictures are written by the\n\
         command below; do not edit it by hand: the prose comes from `bench/NOTES.md`, the\n\
         numbers from the run.\n\n\
         ```sh\n{}\n```\n\n\
         - started: {} (UTC), took {:.1} min; mode: {mode}; {runs}\n\
         - tree: `{}`",
        run.command,
        environment.date(),
        run.elapsed.as_secs_f64() / 60.0,
        environment.commit,
    );
    let _ = writeln!(
        out,
        "\n## Machine and versions\n\n\
         - CPU: {}\n- memory: {}\n- kernel: {}\n- compiler: {}, {} build\n\
         - PostgreSQL: {} ({})\n- librdkafka: {}",
        environment.cpu,
        environment.memory,
        environment.kernel,
        environment.rustc,
        environment.profile,
        environment.postgres,
        environment.postgres_settings,
        environment.librdkafka,
    );
    for broker in &environment.brokers {
        let _ = writeln!(out, "- broker: {broker}");
    }
    out.push_str(
        "\nThe benchmark process, PostgreSQL and the broker share the machine's cores; other\n\
         work on the machine during the run moves a figure and its baseline together.\n",
    );

    out.push_str("\n## Results\n\n| figure | outbox | baseline |\n|---|---|---|\n");
    for (figure, ours, baseline) in &report.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            cell(figure),
            cell(ours),
            cell(baseline)
        );
    }

    out.push_str(
        "\n## RESULT lines\n\nThe median over the runs, with the lowest and highest; a target\n\
         is judged on the median.\n\n| RESULT | median | min – max | runs | target |\n\
         |---|---|---|---|---|\n",
    );
    let summary = report.summary();
    for (name, spread) in &summary {
        let target = target_for(name).map_or_else(String::new, |t| {
            format!("{} — {}", t.bound_text(), verdict(t, spread, run.quick))
        });
        let range = if spread.runs > 1 {
            format!("{} – {}", number(spread.min), number(spread.max))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| `{name}` | {} | {range} | {} | {target} |",
            number(spread.median),
            spread.runs
        );
    }
    let unmeasured: Vec<String> = TARGETS
        .iter()
        .filter(|t| !summary.iter().any(|(name, _)| t.applies_to(name)))
        .map(|t| format!("- `{}` {}: {}", t.name, t.bound_text(), t.what))
        .collect();
    if !unmeasured.is_empty() {
        let _ = writeln!(
            out,
            "\nTargets with no figure in this run:\n\n{}",
            unmeasured.join("\n")
        );
    }

    if !pictures.is_empty() {
        out.push_str("\n## Pictures\n");
        for (title, link) in pictures {
            let _ = writeln!(out, "\n### {title}\n\n![{title}]({link})");
        }
    }
    out.push('\n');
    out.push_str(NOTES);
    out
}

/// A table cell: a `|` would end it early.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// A figure for the reader: thousands grouped, about four significant digits, `n/a` for a
/// value that is not a number.
pub(crate) fn number(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".to_owned();
    }
    let magnitude = value.abs();
    if magnitude >= 1000.0 {
        let digits = format!("{:.0}", magnitude);
        let mut grouped = String::new();
        for (i, digit) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        let sign = if value < 0.0 { "-" } else { "" };
        format!("{sign}{grouped}")
    } else if magnitude >= 100.0 {
        let text = format!("{value:.1}");
        text.trim_end_matches(".0").to_owned()
    } else if magnitude >= 1.0 || magnitude == 0.0 {
        let text = format!("{value:.3}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        text.to_owned()
    } else {
        // Three significant digits below one.
        let decimals = (2 - magnitude.log10().floor() as i32).clamp(3, 12) as usize;
        let text = format!("{value:.decimals$}");
        text.trim_end_matches('0').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[test]
    fn numbers_for_the_reader() {
        assert_eq!(number(55_922.4), "55,922");
        assert_eq!(number(1_000_000.0), "1,000,000");
        assert_eq!(number(-1234.0), "-1,234");
        assert_eq!(number(156.75), "156.8");
        assert_eq!(number(100.0), "100");
        assert_eq!(number(1.278), "1.278");
        assert_eq!(number(25.0), "25");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(0.813), "0.813");
        assert_eq!(number(0.9), "0.9");
        assert_eq!(number(0.001234), "0.00123");
        assert_eq!(number(f64::NAN), "n/a");
    }

    #[test]
    fn the_report_holds_its_figures_targets_and_pictures() {
        let mut report = Report::default();
        report.row(
            "relay drain | mock",
            "55,922 ev/s".into(),
            "db alone".into(),
        );
        for ratio in [0.95, 0.85, 0.92] {
            report.result("relay_limit_ratio_1kib", ratio);
        }
        report.result("relay_peak_rss_mb", 60.0);
        let environment = Environment {
            started: SystemTime::UNIX_EPOCH,
            commit: "abc1234-dirty".into(),
            cpu: "cpu × 2".into(),
            memory: "1.0 GiB".into(),
            kernel: "Linux".into(),
            rustc: "rustc 1.94.0",
            profile: "release",
            postgres: "PostgreSQL 15".into(),
            postgres_settings: "synchronous_commit=on".into(),
            librdkafka: "2.12.1".into(),
            brokers: vec!["mock cluster".into()],
        };
        let run = Run {
            command: "cargo run --release -p outbox-bench -- --markdown BENCHMARKS.md",
            quick: false,
            runs: 3,
            elapsed: Duration::from_secs(90),
        };
        let pictures = [("Inbox".to_owned(), "benchmarks/inbox.svg".to_owned())];
        let text = render(&report, &environment, &run, &pictures);
        assert!(text.contains("1970-01-01T00:00:00Z"), "{text}");
        assert!(text.contains("`abc1234-dirty`"));
        assert!(text.contains("| relay drain \\| mock | 55,922 ev/s | db alone |"));
        assert!(
            text.contains("| `relay_limit_ratio_1kib` | 0.92 | 0.85 – 0.95 | 3 | ≥ 0.9 — met |"),
            "{text}"
        );
        assert!(text.contains("| `relay_peak_rss_mb` | 60 |  | 1 | ≤ 50 — missed |"));
        assert!(text.contains("\n- `wal_e2e_p99_ms` ≤ 10: "));
        assert!(text.contains("![Inbox](benchmarks/inbox.svg)"));
        assert!(text.ends_with(NOTES));
        assert_eq!(
            link(
                Path::new("/w/BENCHMARKS.md"),
                Path::new("/w/benchmarks/a.svg")
            ),
            "benchmarks/a.svg"
        );
        assert_eq!(
            link(Path::new("/w/B.md"), Path::new("/elsewhere/a.svg")),
            "/elsewhere/a.svg"
        );
    }
}
