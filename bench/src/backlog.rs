//! Phase 5: draining a large backlog (1M events, and 10M in full mode on a real broker): the
//! drain rate over time, the rate in the first and the last 10%, the relay's peak RSS, and the
//! outbox table's size before the drain, after it and after a VACUUM.
//!
//! `OUTBOX_BENCH_BACKLOGS=1000000` (comma-separated sizes) replaces the default sizes, e.g. to
//! time one size while planning a full run.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use outbox_core::encode::EventCodec;
use outbox_core::relay::InsertRows;
use outbox_core::table::{Dialect, Table};
use outbox_relay::settings::Settings;
use outbox_sqlx::SqlxRelayStore;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use sqlx::PgPool;

use crate::fixture::{Broker, Fixture, drop_tables, fixture, rows};
use crate::report::{Plot, Report};

/// Rows the server replicates per statement (one transaction each) while loading.
const LOAD_CHUNK: u64 = 1_000_000;
/// How often the relay's `published_total` is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Samples per point of the drain-rate picture (0.5 s windows).
const SAMPLES_PER_POINT: usize = 5;
/// The drain fails when the relay publishes nothing for this long.
const STALL: Duration = Duration::from_secs(120);

pub(crate) async fn backlog(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    report: &mut Report,
    quick: bool,
) -> anyhow::Result<()> {
    let sizes = match std::env::var("OUTBOX_BENCH_BACKLOGS") {
        Ok(list) if !list.is_empty() => list
            .split(',')
            .map(|n| n.trim().replace('_', "").parse::<u64>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("OUTBOX_BENCH_BACKLOGS: {e}"))?,
        _ => match (quick, broker.mock.is_some()) {
            (true, _) => vec![5_000],
            (false, true) => vec![1_000_000],
            (false, false) => vec![1_000_000, 10_000_000],
        },
    };
    anyhow::ensure!(
        sizes.iter().all(|n| *n >= 10),
        "OUTBOX_BENCH_BACKLOGS: a backlog needs at least 10 events"
    );
    println!(
        "\n5. backlog of {} events ({})",
        sizes
            .iter()
            .map(|n| label(*n))
            .collect::<Vec<_>>()
            .join(", "),
        broker.name
    );
    if !quick && broker.mock.is_some() && !sizes.contains(&10_000_000) {
        println!("  (10M skipped: the mock cluster drops data past ~5 MiB per partition)");
    }
    let mut series = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let run = drain_backlog(pool, pg_url, broker, n).await?;
        run.report(report, i == 0);
        series.push((format!("{} backlog", label(n)), run.rate_points()));
    }
    report.plot(Plot::Lines {
        file: "backlog-drain-rate".into(),
        title: format!(
            "Relay drain rate over a large backlog (100 B payloads, {})",
            broker.name
        ),
        x_label: "events drained".into(),
        y_label: "events/s (0.5 s windows)".into(),
        series,
    });
    Ok(())
}

/// `1m`, `10m`, `5k`: the backlog's size in RESULT names and labels.
fn label(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}m", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// What one drain of a backlog measured.
struct Drained {
    n: u64,
    load: Duration,
    vacuum_analyze: Duration,
    /// `(seconds since the relay process was started, events published)`, every 100 ms.
    samples: Vec<(f64, u64)>,
    peak_rss_kb: u64,
    /// `(table, indexes)` in bytes: before the drain, after it, after a plain VACUUM.
    sizes: [(i64, i64); 3],
}

async fn drain_backlog(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    n: u64,
) -> anyhow::Result<Drained> {
    let Fixture {
        names,
        codec,
        config: _,
        store,
    } = fixture(pool, pg_url, broker, "backlog").await?;
    let events = names.qualified(Dialect::Postgres, Table::Events);
    let topic = broker.topic("bench-backlog").await?;
    let started = Instant::now();
    load(pool, &store, &codec, &events, &topic, n).await?;
    let load = started.elapsed();
    // Isolated from the load: hint bits set, statistics fresh, no autovacuum pending.
    let started = Instant::now();
    execute(pool, &format!("VACUUM ANALYZE {events}")).await?;
    let vacuum_analyze = started.elapsed();
    let before = sizes(pool, &events).await?;
    let prefix = names.name(Table::Events).to_string();
    let (samples, peak_rss_kb) =
        run_relay(pg_url, broker, prefix.trim_end_matches("_events"), n).await?;
    let after = sizes(pool, &events).await?;
    execute(pool, &format!("VACUUM {events}")).await?;
    let vacuumed = sizes(pool, &events).await?;
    let (left,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {events}"
    )))
    .fetch_one(pool)
    .await?;
    anyhow::ensure!(left == 0, "{left} rows left after the relay published {n}");
    drop_tables(pool, &names).await?;
    delete_topic(broker, &topic).await;
    Ok(Drained {
        n,
        load,
        vacuum_analyze,
        samples,
        peak_rss_kb,
        sizes: [before, after, vacuumed],
    })
}

/// Loads `n` rows fast and as `publish` writes them: 1,000 template rows (one per key, encoded
/// by the codec, inserted by the store) and the rest replicated by the server from them, with
/// fresh UUIDv7 event ids, in key order `i % 1000` like [`rows`]. A replica carries its
/// template's payload bytes (the `seq` field is the template's, so a payload may be a byte or
/// two shorter than a freshly encoded one).
async fn load(
    pool: &PgPool,
    store: &SqlxRelayStore<sqlx::Postgres>,
    codec: &EventCodec,
    events: &str,
    topic: &str,
    n: u64,
) -> anyhow::Result<()> {
    let templates = rows(codec, topic, n.min(1000) as usize, 100)?;
    let k = templates.len() as i64;
    store.insert_rows(&templates).await?;
    let (first, last): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT MIN(id), MAX(id) FROM {events}"
    )))
    .fetch_one(pool)
    .await?;
    anyhow::ensure!(last - first + 1 == k, "template ids not contiguous");
    // Event ids: the time and version bits of one UUIDv7, the row number in the random bits.
    let prefix = &uuid::Uuid::now_v7().simple().to_string()[..20];
    let n = n as i64;
    let mut start = k;
    while start < n {
        let end = (start + LOAD_CHUNK as i64).min(n) - 1;
        // Only the templates are hashed (an index range), so the join emits rows in `g`
        // order and ids follow the key order.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {events} \
             (event_id, topic, event_key, event_type, schema_id, content_type, payload, headers) \
             SELECT ($1 || lpad(to_hex(g), 12, '0'))::uuid, t.topic, t.event_key, t.event_type, \
             t.schema_id, t.content_type, t.payload, t.headers \
             FROM generate_series($2::bigint, $3::bigint) AS g \
             JOIN (SELECT * FROM {events} WHERE id BETWEEN $4 AND $4 + $5 - 1) AS t \
             ON t.id = $4 + g % $5"
        )))
        .bind(prefix)
        .bind(start)
        .bind(end)
        .bind(first)
        .bind(k)
        .execute(pool)
        .await?;
        start = end + 1;
    }
    Ok(())
}

async fn execute(pool: &PgPool, sql: &str) -> anyhow::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await?;
    Ok(())
}

/// `pg_table_size` and `pg_indexes_size` of `table`, in bytes.
async fn sizes(pool: &PgPool, table: &str) -> anyhow::Result<(i64, i64)> {
    Ok(
        sqlx::query_as("SELECT pg_table_size($1::regclass), pg_indexes_size($1::regclass)")
            .bind(table)
            .fetch_one(pool)
            .await?,
    )
}

/// Frees the broker's memory (tansu keeps records in memory); a failure is only printed.
async fn delete_topic(broker: &Broker, topic: &str) {
    if broker.mock.is_some() {
        return;
    }
    let deleted = async {
        let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &broker.bootstrap)
            .create()?;
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for result in admin.delete_topics(&[topic], &options).await? {
            result.map_err(|(t, e)| anyhow::anyhow!("{t}: {e}"))?;
        }
        anyhow::Ok(())
    };
    if let Err(e) = deleted.await {
        println!("  (could not delete topic {topic}: {e})");
    }
}

/// Runs the relay in a process of its own (so its peak RSS is its own) until it has published
/// `n` events; returns its `published_total` sampled every 100 ms, and its VmHWM.
async fn run_relay(
    pg_url: &str,
    broker: &Broker,
    table_prefix: &str,
    n: u64,
) -> anyhow::Result<(Vec<(f64, u64)>, u64)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config_file =
        std::env::temp_dir().join(format!("outbox-bench-{}.toml", std::process::id()));
    std::fs::write(
        &config_file,
        format!(
            "database_url = \"{pg_url}\"\ntable_prefix = \"{table_prefix}\"\n[kafka]\nbootstrap_servers = \"{}\"\n[relay]\nbatch_size = 1000\n[http]\nlisten = \"127.0.0.1:{port}\"\n[registry]\nlisten = \"\"\n",
            broker.bootstrap
        ),
    )?;
    let started = Instant::now();
    let mut child = Child(
        std::process::Command::new(std::env::current_exe()?)
            .arg("--relay-child")
            .arg(&config_file)
            .spawn()?,
    );
    let mut samples = vec![(0.0, 0)];
    let mut peak_kb = 0;
    let mut progress_at = Instant::now();
    loop {
        tokio::time::sleep(SAMPLE_EVERY).await;
        peak_kb = peak_kb.max(vm_hwm_kb(child.0.id()).unwrap_or(0));
        if let Some(status) = child.0.try_wait()? {
            anyhow::bail!("the relay exited early: {status}");
        }
        let scraped = tokio::task::spawn_blocking(move || published(port)).await?;
        let Some(published) = scraped else {
            anyhow::ensure!(
                progress_at.elapsed() < STALL,
                "the relay's /metrics did not answer"
            );
            continue;
        };
        if published > samples.last().map_or(0, |s| s.1) {
            progress_at = Instant::now();
        }
        anyhow::ensure!(
            progress_at.elapsed() < STALL,
            "the relay stalled at {published} of {n} events"
        );
        samples.push((started.elapsed().as_secs_f64(), published));
        if published >= n {
            break;
        }
    }
    peak_kb = peak_kb.max(vm_hwm_kb(child.0.id()).unwrap_or(0));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    let _ = child.0.wait();
    let _ = std::fs::remove_file(&config_file);
    Ok((samples, peak_kb))
}

/// The relay process; killed if the run ends before it is stopped cleanly.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `outbox_relay_published_total` from the relay's `/metrics` on `port`; `None` while it does
/// not answer.
fn published(port: u16) -> Option<u64> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("outbox_relay_published_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

impl Drained {
    /// The first sample with progress, the drain's start as observed.
    fn first_progress(&self) -> Option<usize> {
        self.samples.iter().position(|(_, p)| *p > 0)
    }

    fn rate(from: (f64, u64), to: (f64, u64)) -> f64 {
        (to.1 - from.1) as f64 / (to.0 - from.0)
    }

    /// Rates over the first and the last 10% of the events, from samples: from the first
    /// sample with progress to the first 10% further on, and from the last sample with at
    /// least 10% left to the end. `None` when the drain was too short to sample.
    fn first_last(&self) -> Option<(f64, f64)> {
        let tenth = self.n / 10;
        let a = self.samples[self.first_progress()?];
        let b = *self.samples.iter().find(|(_, p)| *p >= a.1 + tenth)?;
        let end = *self.samples.last()?;
        let c = *self
            .samples
            .iter()
            .rev()
            .find(|(_, p)| *p <= self.n - tenth)?;
        // Windows that span the whole drain say nothing about its start or end.
        (b.0 < end.0 && c.0 > a.0).then(|| (Self::rate(a, b), Self::rate(c, end)))
    }

    /// The picture's points: `(events drained, rate over the preceding 0.5 s)`.
    fn rate_points(&self) -> Vec<(f64, f64)> {
        let from = self.first_progress().unwrap_or(0);
        let samples = &self.samples[from..];
        let mut points: Vec<(f64, f64)> = samples
            .windows(SAMPLES_PER_POINT + 1)
            .step_by(SAMPLES_PER_POINT)
            .map(|w| {
                (
                    w[SAMPLES_PER_POINT].1 as f64,
                    Self::rate(w[0], w[SAMPLES_PER_POINT]),
                )
            })
            .collect();
        let tail = samples.len().saturating_sub(1) % SAMPLES_PER_POINT;
        if tail > 0 {
            let (s, e) = (
                samples[samples.len() - 1 - tail],
                samples[samples.len() - 1],
            );
            points.push((e.1 as f64, Self::rate(s, e)));
        }
        points
    }

    fn report(&self, report: &mut Report, first_run: bool) {
        let l = label(self.n);
        let mb = |bytes: i64| bytes as f64 / (1024.0 * 1024.0);
        let end = self.samples.last().copied().unwrap_or_default();
        let begin = self.samples[self.first_progress().unwrap_or(0)];
        let drain = end.0 - begin.0;
        let eps = Self::rate(begin, end);
        report.row(
            &format!("backlog {l}: load + VACUUM ANALYZE"),
            format!(
                "{:.1} s + {:.1} s",
                self.load.as_secs_f64(),
                self.vacuum_analyze.as_secs_f64()
            ),
            "INSERT ... SELECT from 1,000 encoded rows".into(),
        );
        report.row(
            &format!("drain {l}: time, rate"),
            format!("{drain:.1} s, {eps:.0} ev/s"),
            format!("+ {:.1} s relay start-up", begin.0),
        );
        let p = |k: &str| format!("backlog_{l}_{k}");
        match self.first_last() {
            Some((first, last)) => {
                report.row(
                    &format!("drain {l}: rate first 10% / last 10%"),
                    format!("{first:.0} / {last:.0} ev/s"),
                    format!("ratio {:.2} (target >= 0.8)", last / first),
                );
                report.result(&p("rate_first_eps"), first);
                report.result(&p("rate_last_eps"), last);
                report.result(&p("rate_ratio"), last / first);
                if first_run {
                    report.result("backlog_rate_ratio", last / first);
                }
            }
            None => report.row(
                &format!("drain {l}: rate first 10% / last 10%"),
                "n/a".into(),
                "drained within a few samples".into(),
            ),
        }
        let rss = self.peak_rss_kb as f64 / 1024.0;
        report.row(
            &format!("relay peak RSS (VmHWM), {l}"),
            format!("{rss:.1} MB"),
            "target <= 50 MB".into(),
        );
        for (when, (table, indexes)) in ["before", "after", "vacuumed"].iter().zip(self.sizes) {
            report.row(
                &format!("outbox table / indexes, {l}, {when}"),
                format!("{:.1} / {:.1} MB", mb(table), mb(indexes)),
                match *when {
                    "before" => "after load + VACUUM ANALYZE",
                    "after" => "drained, before any VACUUM of ours",
                    _ => "after a plain VACUUM",
                }
                .into(),
            );
            report.result(&p(&format!("table_mb_{when}")), mb(table));
            report.result(&p(&format!("index_mb_{when}")), mb(indexes));
        }
        report.result(&p("eps"), eps);
        report.result(&p("drain_s"), drain);
        report.result(&p("load_s"), self.load.as_secs_f64());
        report.result(&p("relay_peak_rss_mb"), rss);
        if first_run {
            report.result("backlog_eps", eps);
            report.result("relay_peak_rss_mb", rss);
        }
    }
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The relay of the backlog scenario, run as `outbox-bench --relay-child CONFIG`.
pub(crate) async fn relay_child(config_file: &str) -> anyhow::Result<()> {
    let config = Settings::load(Some(std::path::Path::new(config_file)), Default::default())?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(config.database_url())
        .await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    outbox_relay::commands::run(pool, &config, async move {
        term.recv().await;
    })
    .await?;
    Ok(())
}
