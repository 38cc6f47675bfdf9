//! Phase 3b: how the relay's drain rate scales with the payload (100 B, 1 KiB, 10 KiB) and
//! with the topic's partitions (1, 16, 64).
//!
//! Each point is one relay run on a fresh table and a fresh topic, payloads of pseudo-random
//! letters (PostgreSQL would compress one repeated letter to nothing at 10 KiB). The counts
//! are sized by bytes: a few seconds of draining, within what the broker holds.

use sqlx::PgPool;

use crate::drain::{Load, broker_suffix, relay_run, size_label};
use crate::fixture::Broker;
use crate::report::{Plot, Report};

/// The most bytes (payload plus record overhead) one run sends to one mock-cluster partition:
/// it drops data past about 5 MiB.
const MOCK_BYTES_PER_PARTITION: usize = 4 << 20;
/// The most bytes one run sends to the test broker (in-memory storage, shared).
const REAL_BYTES_PER_RUN: usize = 128 << 20;
/// Key, CloudEvents headers and framing of one record, roughly.
const RECORD_OVERHEAD: usize = 300;

/// Events in one run of `payload` bytes over `partitions` partitions.
fn events_for(broker: &Broker, payload: usize, partitions: i32, quick: bool) -> usize {
    if quick {
        return if payload > 4096 { 100 } else { 500 };
    }
    let budget = match broker.mock {
        Some(_) => MOCK_BYTES_PER_PARTITION * usize::try_from(partitions).unwrap_or(1),
        None => REAL_BYTES_PER_RUN,
    };
    (budget / (payload + RECORD_OVERHEAD)).clamp(100, 100_000)
}

pub(crate) async fn drain_scaling(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    report: &mut Report,
    quick: bool,
) -> anyhow::Result<()> {
    println!(
        "\n3b. relay drain scaling on {}: payload size ({} partitions), partitions (1 KiB); one run per point",
        broker.name, broker.partitions
    );
    let b = broker_suffix(broker);
    let name = broker.name;

    let mut by_payload = Vec::new();
    for payload in [100, 1024, 10 * 1024] {
        let load = Load {
            payload,
            n: events_for(broker, payload, broker.partitions, quick),
            partitions: broker.partitions,
            random: true,
        };
        let run = relay_run(pool, pg_url, broker, &load).await?;
        let label = size_label(payload);
        let mib_s = run.eps * payload as f64 / f64::from(1 << 20);
        report.row(
            &format!("relay drain {label}, {} events ({name})", load.n),
            format!("{:.0} ev/s", run.eps),
            format!(
                "{mib_s:.1} MiB/s of payload; {} partitions",
                load.partitions
            ),
        );
        let key = label.replace(' ', "").to_lowercase();
        report.result(&format!("drain_scaling_eps_{key}{b}"), run.eps);
        by_payload.push((label, run.eps));
    }
    report.plot(Plot::Bars {
        file: "drain-scaling-payload".into(),
        title: format!(
            "Relay drain rate by payload size ({name}, {} partitions)",
            broker.partitions
        ),
        y_label: "events/s".into(),
        bars: by_payload,
    });

    let mut by_partitions = Vec::new();
    for partitions in [1, 16, 64] {
        let load = Load {
            payload: 1024,
            n: events_for(broker, 1024, partitions, quick),
            partitions,
            random: true,
        };
        let run = relay_run(pool, pg_url, broker, &load).await?;
        report.row(
            &format!(
                "relay drain 1 KiB, {partitions} partitions, {} events ({name})",
                load.n
            ),
            format!("{:.0} ev/s", run.eps),
            String::new(),
        );
        report.result(&format!("drain_scaling_eps_{partitions}p{b}"), run.eps);
        by_partitions.push((format!("{partitions} partitions"), run.eps));
    }
    report.plot(Plot::Bars {
        file: "drain-scaling-partitions".into(),
        title: format!("Relay drain rate by partitions (1 KiB, {name})"),
        y_label: "events/s".into(),
        bars: by_partitions,
    });
    Ok(())
}
