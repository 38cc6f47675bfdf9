//! Phase 5: draining a large backlog, rate at the start vs the end, peak RSS.

use std::time::{Duration, Instant};

use outbox_core::relay::AdminStore;
use outbox_relay::settings::Settings;
use sqlx::PgPool;

use crate::fixture::{Broker, Fixture, drop_tables, fixture, preload, rows};
use crate::report::Report;

pub(crate) async fn backlog(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    report: &mut Report,
    quick: bool,
) -> anyhow::Result<()> {
    let n = if quick { 5_000 } else { 1_000_000 };
    println!("\n5. backlog of {n} events ({})", broker.name);
    let Fixture {
        names,
        codec,
        config: _,
        store,
    } = fixture(pool, pg_url, broker, "backlog").await?;
    let topic = broker.topic("bench-backlog").await?;
    for start in (0..n).step_by(50_000) {
        let chunk = rows(&codec, &topic, (n - start).min(50_000), 100)?;
        preload(&store, &chunk).await?;
    }
    // The relay in a process of its own, so its peak RSS is its own.
    let config_file =
        std::env::temp_dir().join(format!("outbox-bench-{}.toml", std::process::id()));
    let prefix = names.name(outbox_core::table::Table::Events).to_string();
    std::fs::write(
        &config_file,
        format!(
            "database_url = \"{pg_url}\"\ntable_prefix = \"{}\"\n[kafka]\nbootstrap_servers = \"{}\"\n[relay]\nbatch_size = 1000\n[http]\nlisten = \"\"\n[registry]\nlisten = \"\"\n",
            prefix.trim_end_matches("_events"),
            broker.bootstrap
        ),
    )?;
    let started = Instant::now();
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("--relay-child")
        .arg(&config_file)
        .spawn()?;
    let mut samples: Vec<(Duration, u64)> = Vec::new();
    let mut peak_kb = 0;
    loop {
        let left = store.status("outbox-relay").await?.backlog;
        samples.push((started.elapsed(), left));
        peak_kb = peak_kb.max(vm_hwm_kb(child.id()).unwrap_or(0));
        if left == 0 {
            break;
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("the relay exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    peak_kb = peak_kb.max(vm_hwm_kb(child.id()).unwrap_or(0));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let _ = std::fs::remove_file(&config_file);
    let total = started.elapsed();
    let time_until = |left_at_most: u64| {
        samples
            .iter()
            .find(|(_, left)| *left <= left_at_most)
            .map_or(total, |(t, _)| *t)
    };
    let tenth = n as u64 / 10;
    // From the first row drained (start-up of the relay process is not draining).
    let began = samples
        .iter()
        .rev()
        .find(|(_, left)| *left >= n as u64)
        .map_or(Duration::ZERO, |(t, _)| *t);
    let first = time_until(n as u64 - tenth).saturating_sub(began);
    let last = total.saturating_sub(time_until(tenth));
    let (first_rate, last_rate) = (
        tenth as f64 / first.as_secs_f64(),
        tenth as f64 / last.as_secs_f64().max(0.001),
    );
    report.row(
        &format!("drain {n}: rate first 10% / last 10%"),
        format!("{first_rate:.0} / {last_rate:.0} ev/s"),
        format!("ratio {:.2} (target >= 0.8)", last_rate / first_rate),
    );
    report.row(
        "relay peak RSS",
        format!("{:.1} MB", peak_kb as f64 / 1024.0),
        "target <= 100 MB".into(),
    );
    report.result("backlog_rate_ratio", last_rate / first_rate);
    report.result(
        "backlog_eps",
        n as f64 / total.saturating_sub(began).as_secs_f64(),
    );
    report.result("relay_peak_rss_mb", peak_kb as f64 / 1024.0);
    drop_tables(pool, &names).await
}

pub(crate) fn vm_hwm_kb(pid: u32) -> Option<u64> {
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
