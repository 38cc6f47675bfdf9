//! `outbox-relay liberate bulk|incremental`: publish the rows a table already holds, by
//! query (the logic is `outbox_sqlx::liberate`). Progress goes to standard error: a
//! progress bar on a terminal, else a plain line at most every few seconds; the summary
//! (rows, rows/s, queries) to standard output.

use std::future::Future;
use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant};

use outbox_core::Result;
use outbox_core::liberate::Mode;
use outbox_sqlx::OutboxDatabase;
use outbox_sqlx::liberate::{Liberate, LiberateOptions, PreparedLiberation, Progress};
use sqlx::Pool;

use super::liberate_metrics::MetricsFile;
use super::registry::registry;
use super::{CommandError, Outcome};
use crate::cli::{LiberateArgs, LiberateCommand};
use crate::settings::Settings;

/// How often a plain progress line is printed when standard error is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Runs `command` until it is done (bulk, `--once`) or `shutdown` (incremental polling);
/// a signal stops a run between statements, losing and duplicating nothing.
pub(super) async fn execute<DB: OutboxDatabase>(
    pool: Pool<DB>,
    settings: &Settings,
    command: LiberateCommand,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Outcome, CommandError> {
    super::migrate(&pool, settings).await?;
    let liberate = Liberate::new(pool.clone(), settings.tables.clone());
    let registry = registry(pool, settings)?;
    let (args, mode, poll, lag) = match command {
        LiberateCommand::Bulk { args } => (args, Mode::Bulk, None, None),
        LiberateCommand::Incremental {
            args,
            by,
            interval,
            lag,
            once,
        } => {
            if interval.is_zero() {
                // Polling without a pause would hammer the source database.
                return Err(outbox_core::Error::LiberationRefused {
                    table: args.table,
                    reason: "--interval must be longer than 0".to_owned(),
                }
                .into());
            }
            let by = by.split(',').map(|c| c.trim().to_owned()).collect();
            (
                args,
                Mode::Incremental { by },
                (!once).then_some(interval),
                lag,
            )
        }
    };
    let options = LiberateOptions {
        lag,
        ..options(&args)
    };
    let job = liberate
        .prepare(
            &registry,
            &args.table,
            args.topic.as_deref(),
            mode,
            &options,
        )
        .await?;
    let mut metrics = match &args.metrics_file {
        Some(path) => Some(MetricsFile::create(
            path,
            &job.plan.capture.table.to_string(),
            &job.plan.checkpoint_name(),
        )?),
        None => None,
    };
    tokio::pin!(shutdown);
    loop {
        let run = run(&liberate, &job, &options, metrics.as_mut());
        let done = tokio::select! {
            done = run => done?,
            () = &mut shutdown => {
                eprintln!("stopped; the checkpoint keeps what committed");
                return Ok(Outcome::Success);
            }
        };
        println!("{}", summary(&job, &done));
        let Some(interval) = poll else {
            return Ok(Outcome::Success);
        };
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = &mut shutdown => return Ok(Outcome::Success),
        }
    }
}

fn options(args: &LiberateArgs) -> LiberateOptions {
    LiberateOptions {
        chunk: args.chunk,
        rows_per_second: args.rows_per_second,
        restart: args.restart,
        query: args.query.clone(),
        lag: None,
    }
}

/// One run to the end of the rows there are, reporting progress.
async fn run<DB: OutboxDatabase>(
    liberate: &Liberate<DB>,
    job: &PreparedLiberation,
    options: &LiberateOptions,
    mut metrics: Option<&mut MetricsFile>,
) -> Result<Progress> {
    let terminal = std::io::stderr().is_terminal();
    let mut last_line = Instant::now();
    let done = liberate
        .run(job, options, |p| {
            if let Some(metrics) = metrics.as_deref_mut() {
                metrics.update(p, false);
            }
            if terminal {
                eprint!("\r{} {p}   ", bar(p));
                let _ = std::io::stderr().flush();
            } else if last_line.elapsed() >= LINE_EVERY {
                last_line = Instant::now();
                eprintln!("liberate {}: {p}", job.plan.capture.table);
            }
        })
        .await?;
    if terminal && done.chunks > 0 {
        eprintln!();
    }
    if let Some(metrics) = metrics {
        metrics.update(&done, true);
    }
    Ok(done)
}

/// `[##########..........]` for the share of the estimate done.
fn bar(p: &Progress) -> String {
    const WIDTH: u64 = 20;
    let filled = (p.rows_done.min(p.total_estimate) * WIDTH)
        .checked_div(p.total_estimate)
        .unwrap_or(WIDTH);
    let filled = usize::try_from(filled).unwrap_or(0);
    format!(
        "[{}{}]",
        "#".repeat(filled),
        ".".repeat(WIDTH as usize - filled)
    )
}

/// The line a run ends with: what it wrote and what it cost the source.
fn summary(job: &PreparedLiberation, p: &Progress) -> String {
    format!(
        "liberated {} rows of {} ({} mode) to topic {} (schema id {}): {} rows in all; \
         {:.0} rows/s, {} queries in {} chunks, {:.1}s",
        p.rows_this_run,
        job.plan.capture.table,
        job.plan.checkpoint_name(),
        job.plan.capture.topic,
        job.schema_id,
        p.rows_done,
        p.rate(),
        p.queries,
        p.chunks,
        p.elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_share_done() {
        let p = |done, total| Progress {
            rows_done: done,
            total_estimate: total,
            ..Progress::default()
        };
        assert_eq!(bar(&p(0, 100)), format!("[{}]", ".".repeat(20)));
        assert_eq!(
            bar(&p(50, 100)),
            format!("[{}{}]", "#".repeat(10), ".".repeat(10))
        );
        assert_eq!(bar(&p(150, 100)), format!("[{}]", "#".repeat(20)));
        assert_eq!(bar(&p(0, 0)), format!("[{}]", "#".repeat(20)));
    }
}
