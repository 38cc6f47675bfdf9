//! # outbox benchmarks
//!
//! Every figure beside its baseline, measured in the same run on the same database and broker:
//!
//! 1. publish overhead: a business transaction (one INSERT; an UPDATE of an aggregate) with
//!    and without one `publish` (sequential, interleaved; and 8 concurrent writers), and
//!    `publish_all` of 100 vs 100 publishes;
//! 2. encode + validate of a 10-field record vs `apache_avro`'s own encoder;
//! 3. relay drain (100 B and 1 KiB payloads, 1,000 keys) vs baselines doing the relay's own
//!    work, in interleaved rounds: the relay's store calls alone (cursor, batch, fenced
//!    delete), librdkafka producing the relay's records alone, and the naive relay (one row at
//!    a time); then the drain rate by payload (100 B to 10 KiB) and by partitions (1 to 64);
//! 4. end-to-end latency (commit → consumer) at a fixed rate, polling vs LISTEN/NOTIFY, beside
//!    the broker's own produce → consume floor, with where the time goes inside the relay;
//! 5. backlog scaling: draining a large backlog, rate at the start vs the end, peak RSS;
//! 6. WAL mode: publish overhead (a logical message vs a row), drain rate from the slot, and
//!    end-to-end latency at the e2e phase's rate.
//! 7. consuming with the inbox (exactly-once effects on PostgreSQL) vs a bare consumer loop.
//!
//! ```sh
//! cargo run --release -p outbox-bench                 # full run (see BENCHMARKS.md)
//! cargo run -p outbox-bench -- --quick                # small counts, as CI runs it
//! cargo run --release -p outbox-bench -- --markdown BENCHMARKS.md   # BENCHMARKS.md + benchmarks/*.svg
//! ```
//!
//! PostgreSQL from `OUTBOX_TEST_PG_URL` (default the local `test` database); Kafka is
//! librdkafka's in-process mock cluster, and also the broker at `KAFKA_BOOTSTRAP_SERVERS` when
//! set. Ends with one `RESULT name=value` line per figure (with `_min` and `_max` when the
//! phase ran more than once); with `--markdown` it also writes the whole report, with the
//! machine, the versions and the pictures (SVG).

mod backlog;
mod cpu;
mod drain;
mod e2e;
mod encode;
mod environment;
mod events;
mod fixture;
mod inbox;
mod markdown;
mod plot;
mod profile;
mod publish;
mod report;
mod scaling;
mod stages;
mod targets;
mod wal;

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;

use crate::backlog::{backlog, relay_child};
use crate::drain::relay_drain;
use crate::e2e::e2e_latency;
use crate::encode::encode;
use crate::environment::Environment;
use crate::fixture::Broker;
use crate::inbox::inbox_consume;
use crate::markdown::{Outputs, Run};
use crate::publish::publish_overhead;
use crate::report::Report;

#[derive(Debug, Parser)]
struct Args {
    /// Small counts and short runs (CI keeps the harness from rotting; no targets).
    #[arg(long)]
    quick: bool,
    /// Run only these scenarios (publish, encode, drain, e2e, backlog, wal, inbox); all by default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Runs of each phase that repeats; its RESULT lines give the median, min and max
    /// [default: 3, or 1 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=100))]
    runs: Option<u16>,
    /// Write the whole report here (e.g. BENCHMARKS.md): machine, versions, figures, pictures.
    #[arg(long, value_name = "PATH")]
    markdown: Option<PathBuf>,
    /// Where the report's pictures (SVG) go [default: `benchmarks/` beside the --markdown file].
    #[arg(long, value_name = "DIR", requires = "markdown")]
    svg_dir: Option<PathBuf>,
    /// Internal: run the relay for the backlog scenario in this process.
    #[arg(long, hide = true)]
    relay_child: Option<String>,
}

/// How the phases run, the same for all of them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// Small counts and short runs: the harness works, the numbers mean little.
    pub(crate) quick: bool,
    /// How many times a phase that repeats measures (each run calls `report.result` once).
    pub(crate) runs: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pg_url = std::env::var("OUTBOX_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@localhost:5432/test".into());
    if let Some(config) = args.relay_child {
        return relay_child(&config).await;
    }
    let options = Options {
        quick: args.quick,
        runs: args
            .runs
            .map_or(if args.quick { 1 } else { 3 }, usize::from),
    };
    // Before the phases, so a report that cannot be written fails now, not after them.
    let outputs = args
        .markdown
        .as_deref()
        .map(|markdown| Outputs::prepare(markdown, args.svg_dir.as_deref()))
        .transpose()?;
    let started = Instant::now();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&pg_url)
        .await?;
    let mut report = Report::default();
    let mode = if args.quick {
        "quick (small counts, no targets)"
    } else {
        "full"
    };
    println!(
        "outbox benchmarks, {mode}, {} run(s); PostgreSQL at {}",
        options.runs,
        environment::redacted(&pg_url)
    );
    let mock = Broker::mock()?;
    let real = std::env::var("KAFKA_BOOTSTRAP_SERVERS")
        .ok()
        .filter(|s| !s.is_empty())
        .map(Broker::real);
    let brokers = std::iter::once(&mock)
        .chain(&real)
        .map(environment::broker)
        .collect();
    let environment = Environment::collect(
        &pool,
        brokers,
        &outputs.as_ref().map(Outputs::paths).unwrap_or_default(),
    )
    .await;
    println!("  {:<46} {:>22}   baseline", "figure", "outbox");

    let run = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    if run("publish") {
        publish_overhead(&pool, &mut report, args.quick).await?;
    }
    if run("encode") {
        encode(&mut report, args.quick)?;
    }
    if run("drain") {
        relay_drain(&pool, &pg_url, &mock, &mut report, &options).await?;
        if let Some(real) = &real {
            relay_drain(&pool, &pg_url, real, &mut report, &options).await?;
        }
        let broker = real.as_ref().unwrap_or(&mock);
        crate::scaling::drain_scaling(&pool, &pg_url, broker, &mut report, args.quick).await?;
    }
    let broker = real.as_ref().unwrap_or(&mock);
    if run("e2e") {
        e2e_latency(&pool, &pg_url, &mock, &mut report, args.quick).await?;
        if let Some(real) = &real {
            e2e_latency(&pool, &pg_url, real, &mut report, args.quick).await?;
        }
    }
    if run("backlog") {
        backlog(&pool, &pg_url, broker, &mut report, args.quick).await?;
    }
    if run("wal") {
        crate::wal::wal_mode(&pool, &pg_url, broker, &mut report, &options).await?;
    }
    if run("inbox") {
        inbox_consume(&pool, &pg_url, broker, &mut report, &options).await?;
    }

    println!();
    for (name, spread) in report.summary() {
        println!("RESULT {name}={:.3}", spread.median);
        if spread.runs > 1 {
            println!("RESULT {name}_min={:.3}", spread.min);
            println!("RESULT {name}_max={:.3}", spread.max);
        }
    }
    if let Some(outputs) = outputs {
        let command = environment::command();
        let run = Run {
            command: &command,
            quick: options.quick,
            runs: options.runs,
            elapsed: started.elapsed(),
        };
        let pictures = outputs.write(&report, &environment, &run)?;
        println!(
            "\nwrote {} and {} picture(s) in {}",
            outputs.markdown.display(),
            pictures.len(),
            outputs.svg_dir.display()
        );
    }
    Ok(())
}
