//! Phase 1: publish overhead, a business transaction with and without `publish`.

use std::time::Instant;

use sqlx::PgPool;

use crate::events::Payload;
use crate::fixture::{drop_tables, fresh_names, outbox};
use crate::report::{Report, ms, percentile};

pub(crate) async fn publish_overhead(
    pool: &PgPool,
    report: &mut Report,
    quick: bool,
) -> anyhow::Result<()> {
    println!("\n1. publish overhead (PostgreSQL)");
    let names = fresh_names("pub")?;
    let outbox = outbox(pool, &names, false).await?;
    let prefix = names
        .name(outbox_core::table::Table::Events)
        .to_string()
        .trim_end_matches("_events")
        .to_owned();
    let (table, aggregates) = (format!("{prefix}_business"), format!("{prefix}_aggregate"));
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)"
    )))
    .execute(pool)
    .await?;
    // The realistic business transaction: an aggregate (an order) is updated, and its event
    // published. 1,000 aggregates, updated in turn.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {aggregates} (id BIGINT PRIMARY KEY, version BIGINT NOT NULL, \
         status TEXT NOT NULL, total_cents BIGINT NOT NULL)"
    )))
    .execute(pool)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {aggregates} SELECT g, 0, 'new', 1000 FROM generate_series(0, 999) g"
    )))
    .execute(pool)
    .await?;
    // The floor of any write in the caller's transaction: one more row of the event's size,
    // with a unique UUID like the outbox's `event_id`, in a plain table.
    let plain = format!("{prefix}_plain");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {plain} (id BIGSERIAL PRIMARY KEY, event_id UUID NOT NULL UNIQUE, \
         body BYTEA NOT NULL)"
    )))
    .execute(pool)
    .await?;
    let plain_insert =
        format!("INSERT INTO {plain} (event_id, body) VALUES (CAST($1 AS UUID), $2)");
    let insert = format!("INSERT INTO {table} (body) VALUES ($1)");
    let update = format!(
        "UPDATE {aggregates} SET version = version + 1, status = $2, total_cents = total_cents + 1 \
         WHERE id = $1"
    );
    let event = Payload {
        key: "k".into(),
        seq: 1,
        blob: "x".repeat(70),
    };
    let n = if quick { 200 } else { 5000 };
    let one = |business: Business, extra: Extra, i: usize| {
        let (pool, outbox, event, plain_insert) = (
            pool.clone(),
            outbox.clone(),
            event.clone(),
            plain_insert.clone(),
        );
        let sql = match business {
            Business::Insert => insert.clone(),
            Business::Update => update.clone(),
        };
        async move {
            let started = Instant::now();
            let mut tx = pool.begin().await?;
            match business {
                Business::Insert => {
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind("order")
                        .execute(&mut *tx)
                        .await?;
                }
                Business::Update => {
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind((i % 1000) as i64)
                        .bind("paid")
                        .execute(&mut *tx)
                        .await?;
                }
            }
            match extra {
                Extra::Nothing => {}
                Extra::Event => {
                    outbox.publish(&mut *tx, &event).await?;
                }
                Extra::PlainRow => {
                    sqlx::query(sqlx::AssertSqlSafe(plain_insert))
                        .bind(uuid::Uuid::now_v7().to_string())
                        .bind([b'x'; 100].as_slice())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            anyhow::Ok(started.elapsed())
        }
    };
    for business in [Business::Insert, Business::Update] {
        // Interleave the three, rotating which goes first, so drift and noise (other work
        // on this machine) hurt them alike.
        let (mut base, mut with, mut floor) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let kinds = [Extra::Nothing, Extra::Event, Extra::PlainRow];
        for i in 0..n {
            for k in 0..kinds.len() {
                let extra = kinds[(i + k) % kinds.len()];
                let took = one(business, extra, i).await?;
                match extra {
                    Extra::Nothing => base.push(took),
                    Extra::Event => with.push(took),
                    Extra::PlainRow => floor.push(took),
                }
            }
        }
        let (b50, w50) = (percentile(&mut base, 0.5), percentile(&mut with, 0.5));
        let f50 = percentile(&mut floor, 0.5);
        let (b99, w99) = (percentile(&mut base, 0.99), percentile(&mut with, 0.99));
        report.row(
            &format!(
                "{} + publish, sequential, {n} tx: p50 / p99",
                business.label()
            ),
            format!("{:.3} / {:.3} ms", ms(w50), ms(w99)),
            format!(
                "{} alone {:.3} / {:.3} ms",
                business.label(),
                ms(b50),
                ms(b99)
            ),
        );
        let ratio = w50.as_secs_f64() / b50.as_secs_f64();
        report.row(
            &format!("publish overhead ratio (p50), {}", business.label()),
            format!("{ratio:.3}"),
            "target <= 1.10".into(),
        );
        report.result(business.result(), ratio);
        let floor_ratio = f50.as_secs_f64() / b50.as_secs_f64();
        report.row(
            &format!(
                "{} + one plain row instead (the floor of any write in the transaction), p50",
                business.label()
            ),
            format!("{:.3} ms, ratio {floor_ratio:.3}", ms(f50)),
            format!("publish adds {:.3} ms over it", ms(w50.saturating_sub(f50))),
        );
        report.result(business.floor_result(), floor_ratio);
    }

    let concurrent = |extra: Extra| {
        let one = &one;
        async move {
            let tasks: Vec<_> = (0..8)
                .map(|w| async move {
                    let mut samples = Vec::new();
                    for i in 0..n / 8 {
                        samples.push(one(Business::Insert, extra, w * 1000 + i).await?);
                    }
                    anyhow::Ok(samples)
                })
                .collect();
            let mut all = Vec::new();
            for samples in futures_join(tasks).await {
                all.extend(samples?);
            }
            anyhow::Ok(all)
        }
    };
    let (mut base8, mut with8) = (
        concurrent(Extra::Nothing).await?,
        concurrent(Extra::Event).await?,
    );
    let (b50, w50, b99, w99) = (
        percentile(&mut base8, 0.5),
        percentile(&mut with8, 0.5),
        percentile(&mut base8, 0.99),
        percentile(&mut with8, 0.99),
    );
    report.row(
        "tx + publish, 8 writers: p50 / p99",
        format!("{:.3} / {:.3} ms", ms(w50), ms(w99)),
        format!("tx alone {:.3} / {:.3} ms", ms(b50), ms(b99)),
    );
    report.result(
        "publish_overhead_ratio_8_writers",
        w50.as_secs_f64() / b50.as_secs_f64(),
    );

    let reps = if quick { 5 } else { 50 };
    let (batched, single) = publish_batch(pool, &outbox, reps).await?;
    report_batch(report, false, batched, single);
    // sqlx 0.9.0 leaves Nagle's algorithm on (no TCP_NODELAY): over TLS a statement larger
    // than one TLS record goes out in several writes, and the last waits for the server's
    // delayed ACK (~40 ms). The same batch without TLS shows that cost apart.
    let options = pool.connect_options();
    if !matches!(options.get_ssl_mode(), sqlx::postgres::PgSslMode::Disable) {
        let plain = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_with(
                options
                    .as_ref()
                    .clone()
                    .ssl_mode(sqlx::postgres::PgSslMode::Disable),
            )
            .await;
        match plain {
            Ok(plain) => {
                let outbox = crate::fixture::outbox(&plain, &names, false).await?;
                let (batched, single) = publish_batch(&plain, &outbox, reps).await?;
                report_batch(report, true, batched, single);
                plain.close().await;
            }
            Err(e) => println!("  (no connection without TLS for the comparison: {e})"),
        }
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP TABLE {table}, {aggregates}, {plain}"
    )))
    .execute(pool)
    .await?;
    drop_tables(pool, &names).await
}

/// What a timed transaction writes besides its business statement.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Extra {
    /// Nothing: the baseline.
    Nothing,
    /// One `publish`.
    Event,
    /// One row of the event's size in a plain table: the floor of any extra write.
    PlainRow,
}

/// The business transaction an event is published in.
#[derive(Debug, Clone, Copy)]
enum Business {
    /// One INSERT of a new row.
    Insert,
    /// An UPDATE of an aggregate's row (the realistic case).
    Update,
}

impl Business {
    fn label(self) -> &'static str {
        match self {
            Self::Insert => "INSERT",
            Self::Update => "UPDATE aggregate",
        }
    }

    fn result(self) -> &'static str {
        match self {
            Self::Insert => "publish_overhead_ratio",
            Self::Update => "publish_overhead_ratio_update",
        }
    }

    /// The plain row's ratio: not a target, the floor the target is read against.
    fn floor_result(self) -> &'static str {
        match self {
            Self::Insert => "plain_row_ratio",
            Self::Update => "plain_row_ratio_update",
        }
    }
}

/// Polls futures concurrently on this task (no spawn, so borrowed data can be used).
pub(crate) async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, future) in out.iter_mut().zip(pinned.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|v| v.expect("every future completed"))
        .collect()
}

/// The `publish_all` row and speedup, on the bench's connection or one without TLS.
fn report_batch(
    report: &mut Report,
    without_tls: bool,
    batched: std::time::Duration,
    single: std::time::Duration,
) {
    let (label, result) = if without_tls {
        (", sslmode=disable", "publish_all_speedup_without_tls")
    } else {
        ("", "publish_all_speedup")
    };
    report.row(
        &format!("publish_all of 100 events{label} (p50)"),
        format!("{:.3} ms", ms(batched)),
        format!("100 publishes {:.3} ms", ms(single)),
    );
    report.result(result, single.as_secs_f64() / batched.as_secs_f64());
}

/// `publish_all` of 100 events in one transaction beside the same events published one by
/// one in one transaction, interleaved `reps` times: the two medians.
async fn publish_batch(
    pool: &PgPool,
    outbox: &outbox_sqlx::postgres::PgOutbox,
    reps: usize,
) -> anyhow::Result<(std::time::Duration, std::time::Duration)> {
    let events: Vec<Payload> = (0..100)
        .map(|i| Payload {
            key: format!("k{i}"),
            seq: i,
            blob: "x".repeat(70),
        })
        .collect();
    let (mut batched, mut single) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let started = Instant::now();
        let mut tx = pool.begin().await?;
        outbox.publish_all(&mut *tx, &events).await?;
        tx.commit().await?;
        batched.push(started.elapsed());
        let started = Instant::now();
        let mut tx = pool.begin().await?;
        for e in &events {
            outbox.publish(&mut *tx, e).await?;
        }
        tx.commit().await?;
        single.push(started.elapsed());
    }
    Ok((percentile(&mut batched, 0.5), percentile(&mut single, 0.5)))
}
