//! # Orders service on PostgreSQL (diesel)
//!
//! The diesel flavour of `orders-postgres`: worker threads, each with its own `PgConnection`,
//! handle orders; every change is one `conn.transaction(|conn| ...)` that updates the order
//! row and publishes the event. The rows are identical to `outbox-sqlx`'s, so the same
//! `outbox-relay` drains them:
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@localhost:5432/test cargo run -p orders-diesel
//! outbox-relay --database-url postgres://postgres@localhost:5432/test \
//!     --table-prefix orders_diesel --bootstrap-servers localhost:9092 run
//! ```
//!
//! Guarantees it relies on: an event exists iff its transaction committed; per order,
//! consumers see the events in the order the transactions wrote them.

use std::sync::Arc;

use diesel::{Connection, PgConnection, RunQueryDsl};
use outbox_core::Event;
use outbox_core::avro::AvroSchema;
use outbox_core::table::TableNames;
use outbox_diesel::postgres::PgOutbox;
use serde::Serialize;

#[derive(Serialize, AvroSchema)]
#[avro(namespace = "com.acme.orders", doc = "An order's status changed")]
struct OrderStatusChanged {
    order_id: String,
    status: String,
}

impl Event for OrderStatusChanged {
    const TOPIC: &'static str = "order-status";
    fn key(&self) -> Option<String> {
        Some(self.order_id.clone())
    }
}

const WORKERS: usize = 4;
const ORDERS_PER_WORKER: usize = 5;

fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@localhost:5432/test".to_owned());
    let mut conn = PgConnection::establish(&url)?;
    let outbox = Arc::new(
        PgOutbox::builder()
            .table_names(TableNames::with_prefix("orders_diesel")?)
            .register::<OrderStatusChanged>()
            .build(&mut conn)?,
    );
    diesel::sql_query(
        "CREATE TABLE IF NOT EXISTS orders_diesel_orders (id TEXT PRIMARY KEY, status TEXT NOT NULL)",
    )
    .execute(&mut conn)?;

    let run = std::process::id();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (url, outbox) = (url.clone(), Arc::clone(&outbox));
            std::thread::spawn(move || -> anyhow::Result<usize> {
                let mut conn = PgConnection::establish(&url)?;
                let mut published = 0;
                for n in 0..ORDERS_PER_WORKER {
                    let id = format!("ord-{run}-{w}-{n}");
                    for status in ["placed", "paid", "shipped"] {
                        change_status(&mut conn, &outbox, &id, status)?;
                        published += 1;
                    }
                }
                Ok(published)
            })
        })
        .collect();
    let mut published = 0;
    for worker in workers {
        published += worker
            .join()
            .map_err(|_| anyhow::anyhow!("worker panicked"))??;
    }
    println!("{published} status changes published through the outbox (orders_diesel_events)");
    println!(
        "drain them: outbox-relay --database-url {url} --table-prefix orders_diesel --bootstrap-servers <kafka> run"
    );
    Ok(())
}

/// One request: the row and its event change together, or not at all.
fn change_status(
    conn: &mut PgConnection,
    outbox: &PgOutbox,
    id: &str,
    status: &str,
) -> anyhow::Result<()> {
    conn.transaction(|conn| {
        diesel::sql_query(
            "INSERT INTO orders_diesel_orders (id, status) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET status = excluded.status",
        )
        .bind::<diesel::sql_types::Text, _>(id)
        .bind::<diesel::sql_types::Text, _>(status)
        .execute(conn)?;
        outbox.publish(
            conn,
            &OrderStatusChanged {
                order_id: id.to_owned(),
                status: status.to_owned(),
            },
        )?;
        Ok(())
    })
}
