//! # Orders service on PostgreSQL (diesel-async, bb8)
//!
//! The async diesel flavour of `orders-diesel`: tasks on a tokio runtime take connections
//! from a bb8 pool of `AsyncPgConnection`s; every change is one
//! `conn.transaction(async |conn| ...)` that updates the order row and publishes the event.
//! One change fails after publishing, so its transaction rolls back and its event never
//! exists. The rows are identical to `outbox-sqlx`'s and blocking diesel's, so the same
//! `outbox-relay` drains them:
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@localhost:5432/test cargo run -p orders-diesel-async
//! outbox-relay --database-url postgres://postgres@localhost:5432/test \
//!     --table-prefix orders_diesel_async --bootstrap-servers localhost:9092 run
//! ```
//!
//! It prints `run: <id>` (every order id of this run holds it) and how many events it
//! committed, which `.ci/examples.sh` then counts on the topic.

use std::sync::Arc;

use diesel::result::Error as DieselError;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use outbox_core::Event;
use outbox_core::avro::AvroSchema;
use outbox_core::table::TableNames;
use outbox_diesel::postgres::AsyncPgOutbox;
use serde::Serialize;

#[derive(Serialize, AvroSchema)]
#[avro(namespace = "com.acme.orders", doc = "An order's status changed")]
struct OrderStatusChanged {
    order_id: String,
    status: String,
}

impl Event for OrderStatusChanged {
    const TOPIC: &'static str = "order-status-async";
    fn key(&self) -> Option<String> {
        Some(self.order_id.clone())
    }
}

const TASKS: usize = 4;
const ORDERS_PER_TASK: usize = 5;
const STATUSES: [&str; 3] = ["placed", "paid", "shipped"];

type Pool = bb8::Pool<AsyncDieselConnectionManager<AsyncPgConnection>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@localhost:5432/test".to_owned());
    let pool: Pool = bb8::Pool::builder()
        .max_size(TASKS as u32)
        .build(AsyncDieselConnectionManager::new(url.clone()))
        .await?;
    let outbox = {
        let mut conn = pool.get().await?;
        diesel::sql_query(
            "CREATE TABLE IF NOT EXISTS orders_diesel_async_orders \
             (id TEXT PRIMARY KEY, status TEXT NOT NULL)",
        )
        .execute(&mut conn)
        .await?;
        Arc::new(
            AsyncPgOutbox::builder()
                .table_names(TableNames::with_prefix("orders_diesel_async")?)
                .register::<OrderStatusChanged>()
                .build(&mut conn)
                .await?,
        )
    };

    let run = uuid::Uuid::now_v7().simple().to_string();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (pool, outbox, run) = (pool.clone(), Arc::clone(&outbox), run.clone());
            tokio::spawn(async move {
                let mut published = 0;
                for n in 0..ORDERS_PER_TASK {
                    let id = format!("ord-{run}-{t}-{n}");
                    for status in STATUSES {
                        let mut conn = pool.get().await?;
                        change_status(&mut conn, &outbox, &id, status, false).await?;
                        published += 1;
                    }
                }
                anyhow::Ok(published)
            })
        })
        .collect();
    let mut published = 0;
    for task in tasks {
        published += task.await??;
    }

    // A request that fails after publishing: its row and its event roll back together.
    let mut conn = pool.get().await?;
    let cancelled = format!("ord-{run}-rolled-back");
    let failed = change_status(&mut conn, &outbox, &cancelled, "placed", true).await;
    anyhow::ensure!(failed.is_err(), "the failing request must roll back");

    println!("run: {run}");
    println!("published: {published}");
    println!(
        "drain them: outbox-relay --database-url {url} --table-prefix orders_diesel_async --bootstrap-servers <kafka> run"
    );
    Ok(())
}

/// One request: the row and its event change together, or not at all (`fail` makes it fail
/// after both were written).
async fn change_status(
    conn: &mut AsyncPgConnection,
    outbox: &AsyncPgOutbox,
    id: &str,
    status: &str,
    fail: bool,
) -> anyhow::Result<()> {
    let event = OrderStatusChanged {
        order_id: id.to_owned(),
        status: status.to_owned(),
    };
    conn.transaction::<_, anyhow::Error, _>(async |conn| {
        diesel::sql_query(
            "INSERT INTO orders_diesel_async_orders (id, status) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET status = excluded.status",
        )
        .bind::<diesel::sql_types::Text, _>(id)
        .bind::<diesel::sql_types::Text, _>(status)
        .execute(conn)
        .await?;
        outbox.publish(conn, &event).await?;
        if fail {
            return Err(DieselError::RollbackTransaction.into());
        }
        Ok(())
    })
    .await
}
