//! What a run was measured on: the tree, the machine, the versions and the brokers, read when
//! the run starts so the written report says what produced its numbers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use sqlx::PgPool;

use crate::fixture::Broker;

/// The facts printed at the head of the written report; a fact that cannot be read is
/// `unknown`, never a failed run.
#[derive(Debug, Clone)]
pub(crate) struct Environment {
    /// When the run started, UTC (RFC 3339).
    pub(crate) started: SystemTime,
    /// `git rev-parse --short HEAD`, with `-dirty` when tracked files differ from it.
    pub(crate) commit: String,
    pub(crate) cpu: String,
    pub(crate) memory: String,
    pub(crate) kernel: String,
    /// The compiler that built this binary (`rustc -V`, recorded by the build script).
    pub(crate) rustc: &'static str,
    pub(crate) profile: &'static str,
    pub(crate) postgres: String,
    pub(crate) postgres_settings: String,
    pub(crate) librdkafka: String,
    /// One line per broker the run used.
    pub(crate) brokers: Vec<String>,
}

impl Environment {
    /// Reads the facts. `outputs` are the files the run will write (the report and its
    /// pictures): a tree whose only changes are those is not called dirty.
    pub(crate) async fn collect(pool: &PgPool, brokers: Vec<String>, outputs: &[&Path]) -> Self {
        let postgres: Result<(String, String, String), _> = sqlx::query_as(
            "SELECT version(), current_setting('synchronous_commit'), \
             current_setting('shared_buffers')",
        )
        .fetch_one(pool)
        .await;
        let (postgres, postgres_settings) = match postgres {
            Ok((version, sync, buffers)) => (
                version,
                format!("synchronous_commit={sync}, shared_buffers={buffers}"),
            ),
            Err(e) => (format!("unknown ({e})"), "unknown".to_owned()),
        };
        let (_, librdkafka) = rdkafka::util::get_rdkafka_version();
        Self {
            started: SystemTime::now(),
            commit: commit(outputs),
            cpu: std::fs::read_to_string("/proc/cpuinfo")
                .map_or_else(|_| unknown(), |text| cpu(&text)),
            memory: std::fs::read_to_string("/proc/meminfo")
                .map_or_else(|_| unknown(), |text| memory(&text)),
            kernel: kernel(),
            rustc: env!("OUTBOX_BENCH_RUSTC"),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            postgres,
            postgres_settings,
            librdkafka,
            brokers,
        }
    }

    /// The start of the run as `2026-11-30T15:15:03Z`.
    pub(crate) fn date(&self) -> String {
        humantime::format_rfc3339_seconds(self.started).to_string()
    }
}

/// One line on a broker the run uses.
pub(crate) fn broker(broker: &Broker) -> String {
    if broker.mock.is_some() {
        format!(
            "librdkafka's in-process mock cluster (`{}` in the figures), {} partitions per topic",
            broker.name, broker.partitions
        )
    } else {
        format!(
            "the test broker at {} from KAFKA_BOOTSTRAP_SERVERS (`{}` in the figures), {} \
             partitions per topic",
            broker.bootstrap, broker.name, broker.partitions
        )
    }
}

/// The command that reproduces this run, as typed: the broker and database from the
/// environment (a password hidden), then `cargo run` with this build's profile and arguments.
pub(crate) fn command() -> String {
    let mut words = Vec::new();
    for name in ["KAFKA_BOOTSTRAP_SERVERS", "OUTBOX_TEST_PG_URL"] {
        if let Some(value) = std::env::var(name).ok().filter(|v| !v.is_empty()) {
            words.push(format!("{name}={}", quoted(&redacted(&value))));
        }
    }
    words.push("cargo run".to_owned());
    if !cfg!(debug_assertions) {
        words.push("--release".to_owned());
    }
    words.push("-p outbox-bench".to_owned());
    let args: Vec<String> = std::env::args().skip(1).map(|a| quoted(&a)).collect();
    if !args.is_empty() {
        words.push("--".to_owned());
        words.extend(args);
    }
    words.join(" ")
}

/// The word as a POSIX shell reads it back.
pub(crate) fn quoted(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./=,:@%+".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A URL with the password of its user info replaced by `***`.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
        }
        _ => url.to_owned(),
    }
}

fn unknown() -> String {
    "unknown".to_owned()
}

/// The workspace this binary was built from (the bench crate's parent).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn commit(outputs: &[&Path]) -> String {
    let root = workspace();
    let Some(head) = git(&root, &["rev-parse", "--short", "HEAD"]) else {
        return unknown();
    };
    // The report's own files are excluded (a previous run's are there until committed); a
    // pathspec outside the tree is an error to git, so only those inside are given.
    let canonical_root = root.canonicalize().unwrap_or_else(|_| root.clone());
    let excludes: Vec<String> = outputs
        .iter()
        .filter_map(|path| path.strip_prefix(&canonical_root).ok())
        .map(|path| format!(":(exclude){}", path.display()))
        .collect();
    let mut args = vec!["status", "--porcelain", "--untracked-files=no", "--", "."];
    args.extend(excludes.iter().map(String::as_str));
    match git(&root, &args) {
        Some(changes) if changes.is_empty() => head,
        Some(_) => format!("{head}-dirty"),
        None => format!("{head} (state unknown)"),
    }
}

/// `Intel(R) Xeon(R) ... × 2` from `/proc/cpuinfo`.
pub(crate) fn cpu(cpuinfo: &str) -> String {
    let field = |line: &str, name: &str| {
        line.split_once(':')
            .filter(|(key, _)| key.trim() == name)
            .map(|(_, value)| value.trim().to_owned())
    };
    let model = cpuinfo
        .lines()
        .find_map(|line| field(line, "model name"))
        .unwrap_or_else(unknown);
    let count = cpuinfo
        .lines()
        .filter(|line| field(line, "processor").is_some())
        .count();
    format!("{model} × {count}")
}

/// `23.4 GiB` from `/proc/meminfo`'s `MemTotal`.
pub(crate) fn memory(meminfo: &str) -> String {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or_else(unknown, |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
}

fn kernel() -> String {
    let read = |file: &str| std::fs::read_to_string(file).map(|s| s.trim().to_owned());
    match (
        read("/proc/sys/kernel/ostype"),
        read("/proc/sys/kernel/osrelease"),
    ) {
        (Ok(os), Ok(release)) => format!("{os} {release} ({})", std::env::consts::ARCH),
        _ => format!("{} ({})", std::env::consts::OS, std::env::consts::ARCH),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory_from_proc() {
        let cpuinfo = "processor\t: 0\nmodel name\t: Some CPU @ 2.00GHz\nflags\t: a b\n\n\
                       processor\t: 1\nmodel name\t: Some CPU @ 2.00GHz\n";
        assert_eq!(cpu(cpuinfo), "Some CPU @ 2.00GHz × 2");
        assert_eq!(cpu(""), "unknown × 0");
        assert_eq!(
            memory("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            "23.4 GiB"
        );
        assert_eq!(memory("MemTotal: lots\n"), "unknown");
    }

    #[test]
    fn the_command_reads_back_and_hides_passwords() {
        assert_eq!(quoted("--markdown"), "--markdown");
        assert_eq!(quoted("a b"), "'a b'");
        assert_eq!(quoted("it's"), r"'it'\''s'");
        assert_eq!(quoted(""), "''");
        assert_eq!(
            redacted("postgres://u:secret@db:5432/test?x=1"),
            "postgres://u:***@db:5432/test?x=1"
        );
        assert_eq!(
            redacted("postgres://postgres@localhost/test"),
            "postgres://postgres@localhost/test"
        );
        assert_eq!(redacted("127.0.0.1:19092"), "127.0.0.1:19092");
    }
}
