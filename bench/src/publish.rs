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
    let table = format!(
        "{}_business",
        names
            .name(outbox_core::table::Table::Events)
            .to_string()
            .trim_end_matches("_events")
    );
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)"
    )))
    .execute(pool)
    .await?;
    let insert = format!("INSERT INTO {table} (body) VALUES ($1)");
    let event = Payload {
        key: "k".into(),
        seq: 1,
        blob: "x".repeat(70),
    };
    let n = if quick { 200 } else { 5000 };
    let one = |with_event: bool| {
        let (pool, outbox, insert, event) =
            (pool.clone(), outbox.clone(), insert.clone(), event.clone());
        async move {
            let started = Instant::now();
            let mut tx = pool.begin().await?;
            sqlx::query(sqlx::AssertSqlSafe(insert))
                .bind("order")
                .execute(&mut *tx)
                .await?;
            if with_event {
                outbox.publish(&mut *tx, &event).await?;
            }
            tx.commit().await?;
            anyhow::Ok(started.elapsed())
        }
    };
    // Alternate blocks so drift hurts both sides alike.
    let (mut base, mut with) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..10 {
        for _ in 0..n / 10 {
            base.push(one(false).await?);
        }
        for _ in 0..n / 10 {
            with.push(one(true).await?);
        }
    }
    let (b50, w50) = (percentile(&mut base, 0.5), percentile(&mut with, 0.5));
    let (b99, w99) = (percentile(&mut base, 0.99), percentile(&mut with, 0.99));
    report.row(
        &format!("tx + publish, sequential, {n} tx: p50 / p99"),
        format!("{:.3} / {:.3} ms", ms(w50), ms(w99)),
        format!("tx alone {:.3} / {:.3} ms", ms(b50), ms(b99)),
    );
    let ratio = w50.as_secs_f64() / b50.as_secs_f64();
    report.row(
        "publish overhead ratio (p50)",
        format!("{ratio:.3}"),
        "target <= 1.15".into(),
    );
    report.result("publish_overhead_ratio", ratio);

    let concurrent = |with_event: bool| {
        let one = &one;
        async move {
            let tasks: Vec<_> = (0..8)
                .map(|_| async move {
                    let mut samples = Vec::new();
                    for _ in 0..n / 8 {
                        samples.push(one(with_event).await?);
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
    let (mut base8, mut with8) = (concurrent(false).await?, concurrent(true).await?);
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
    let (b, s) = (percentile(&mut batched, 0.5), percentile(&mut single, 0.5));
    report.row(
        "publish_all of 100 events (p50)",
        format!("{:.3} ms", ms(b)),
        format!("100 publishes {:.3} ms", ms(s)),
    );
    report.result("publish_all_speedup", s.as_secs_f64() / b.as_secs_f64());
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
        .execute(pool)
        .await?;
    drop_tables(pool, &names).await
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
