//! # Orders service on PostgreSQL (sqlx)
//!
//! Concurrent requests, each one transaction that changes an order row and publishes the
//! matching event: `OrderPlaced`, then `OrderPaid`, then `OrderShipped`, all on the `orders`
//! topic keyed by order id (several event types on one topic, so subjects follow the
//! TopicRecordName strategy). The `outbox-relay` binary drains the outbox:
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@localhost:5432/test cargo run -p orders-postgres
//! outbox-relay --database-url postgres://postgres@localhost:5432/test \
//!     --table-prefix orders_svc --bootstrap-servers localhost:9092 run
//! ```
//!
//! Guarantees it relies on: an event exists iff its transaction committed (atomic publish);
//! per order, consumers see placed → paid → shipped (per-key order; PostgreSQL strict order
//! keeps it even when transactions commit out of order).

use outbox_core::Event;
use outbox_core::avro::AvroSchema;
use outbox_core::registry::SubjectNameStrategy;
use outbox_core::table::TableNames;
use outbox_sqlx::postgres::PgOutbox;
use serde::Serialize;
use sqlx::PgPool;

#[derive(Serialize, AvroSchema)]
#[avro(namespace = "com.acme.orders", doc = "A customer placed an order")]
struct OrderPlaced {
    order_id: String,
    customer: String,
    total_cents: i64,
}

#[derive(Serialize, AvroSchema)]
#[avro(namespace = "com.acme.orders", doc = "The order was paid")]
struct OrderPaid {
    order_id: String,
    payment_ref: String,
}

#[derive(Serialize, AvroSchema)]
#[avro(namespace = "com.acme.orders", doc = "The order left the warehouse")]
struct OrderShipped {
    order_id: String,
    carrier: String,
}

macro_rules! order_event {
    ($($t:ty),*) => {$(
        impl Event for $t {
            const TOPIC: &'static str = "orders";
            fn key(&self) -> Option<String> {
                Some(self.order_id.clone())
            }
        }
    )*};
}
order_event!(OrderPlaced, OrderPaid, OrderShipped);

const REQUESTS: usize = 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@localhost:5432/test".to_owned());
    let pool = PgPool::connect(&url).await?;
    let outbox = PgOutbox::builder(pool.clone())
        .table_names(TableNames::with_prefix("orders_svc")?)
        .subject_name_strategy(SubjectNameStrategy::TopicRecordName)
        .register::<OrderPlaced>()
        .register::<OrderPaid>()
        .register::<OrderShipped>()
        .build()
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS orders_svc_orders \
         (id TEXT PRIMARY KEY, customer TEXT NOT NULL, total_cents BIGINT NOT NULL, status TEXT NOT NULL)",
    )
    .execute(&pool)
    .await?;

    let run = std::process::id();
    let requests: Vec<_> = (0..REQUESTS)
        .map(|n| {
            let (pool, outbox) = (pool.clone(), outbox.clone());
            tokio::spawn(
                async move { handle_order(&pool, &outbox, format!("ord-{run}-{n}")).await },
            )
        })
        .collect();
    for request in requests {
        request.await??;
    }
    let status = outbox.relay_store();
    let backlog = outbox_core::relay::AdminStore::status(&status, "outbox-relay")
        .await?
        .backlog;
    println!(
        "{REQUESTS} orders placed, paid and shipped; {backlog} events wait in orders_svc_events"
    );
    println!(
        "drain them: outbox-relay --database-url {url} --table-prefix orders_svc --bootstrap-servers <kafka> run"
    );
    Ok(())
}

/// One order's life: three requests, three transactions, each updating the row and
/// publishing the event in the same transaction.
async fn handle_order(pool: &PgPool, outbox: &PgOutbox, id: String) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO orders_svc_orders VALUES ($1, $2, $3, 'placed')")
        .bind(&id)
        .bind("alice")
        .bind(2_500_i64)
        .execute(&mut *tx)
        .await?;
    let placed = OrderPlaced {
        order_id: id.clone(),
        customer: "alice".into(),
        total_cents: 2_500,
    };
    outbox.publish(&mut *tx, &placed).await?;
    tx.commit().await?;

    set_status(
        pool,
        outbox,
        &id,
        "paid",
        &OrderPaid {
            order_id: id.clone(),
            payment_ref: format!("pay-{id}"),
        },
    )
    .await?;
    set_status(
        pool,
        outbox,
        &id,
        "shipped",
        &OrderShipped {
            order_id: id.clone(),
            carrier: "ups".into(),
        },
    )
    .await?;
    Ok(())
}

/// A status change: the row update and its event in one transaction.
async fn set_status<E: Event + 'static>(
    pool: &PgPool,
    outbox: &PgOutbox,
    id: &str,
    status: &str,
    event: &E,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE orders_svc_orders SET status = $1 WHERE id = $2")
        .bind(status)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    outbox.publish(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(())
}
