//! Trigger capture on every database: real tables, real triggers, the outbox rows they
//! write, and the Avro the relay makes of them.

use std::sync::Arc;

use outbox_core::avro::types::Value as Avro;
use outbox_core::capture::{CAPTURE_CONTENT_TYPE, CaptureSpec, encode_image};
use outbox_core::encode::wire;
use outbox_core::registry::Registry;
use outbox_core::table::{Dialect, Statements, Table, TableNames};
use outbox_core::{Error, Schema};
use outbox_sqlx::capture::Capture;
use outbox_sqlx::{Column, OutboxDatabase, SqlxSchemaStore, Value};
use sqlx::Pool;

use super::{count, drop_tables, fresh_names};

/// A test's outbox, registry and capture, and its own table names.
pub struct Fixture<DB: OutboxDatabase> {
    pub pool: Pool<DB>,
    pub names: TableNames,
    pub registry: Registry<SqlxSchemaStore<DB>>,
    pub capture: Capture<DB>,
    pub tables: Vec<String>,
}

impl<DB: OutboxDatabase> Fixture<DB> {
    pub async fn new(pool: &Pool<DB>) -> Self {
        let names = fresh_names();
        let stmts = Arc::new(Statements::new(DB::DIALECT, &names));
        outbox_sqlx::migrate(pool, &stmts).await.expect("migrate");
        Self {
            pool: pool.clone(),
            registry: Registry::new(SqlxSchemaStore::new(pool.clone(), stmts)),
            capture: Capture::new(pool.clone(), names.clone()),
            names,
            tables: Vec::new(),
        }
    }

    /// A table name of this test (`<prefix>_<what>`).
    pub fn table(&mut self, what: &str) -> String {
        let name = format!(
            "{}_{what}",
            self.names
                .name(Table::Events)
                .as_str()
                .trim_end_matches("_events")
        );
        self.tables.push(name.clone());
        name
    }

    pub async fn exec(&self, sql: &str) {
        let mut conn = self.pool.acquire().await.expect("connection");
        DB::run(&mut *conn, sql, vec![])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The captured rows, in outbox order: (event_id, topic, key, type, schema id, content
    /// type, payload JSON).
    pub async fn events(&self) -> Vec<Captured> {
        let mut conn = self.pool.acquire().await.expect("connection");
        let sql = format!(
            "SELECT CAST(event_id AS {}), topic, event_key, event_type, schema_id, content_type, payload FROM {} ORDER BY id",
            if DB::DIALECT == Dialect::MySql {
                "CHAR"
            } else {
                "TEXT"
            },
            self.names.qualified(DB::DIALECT, Table::Events)
        );
        let rows = DB::rows(
            &mut *conn,
            &sql,
            vec![],
            &[
                Column::Text,
                Column::Text,
                Column::OptBytes,
                Column::Text,
                Column::OptI32,
                Column::Text,
                Column::Bytes,
            ],
        )
        .await
        .expect("read events");
        rows.into_iter()
            .map(|row| {
                let mut it = row.into_iter();
                let text = |v: Option<Value>| match v {
                    Some(Value::Text(s)) => s,
                    other => panic!("{other:?}"),
                };
                let event_id = text(it.next());
                let topic = text(it.next());
                let Some(Value::OptBytes(key)) = it.next() else {
                    panic!("key")
                };
                let event_type = text(it.next());
                let Some(Value::OptI32(schema_id)) = it.next() else {
                    panic!("schema id")
                };
                let content_type = text(it.next());
                let Some(Value::Bytes(payload)) = it.next() else {
                    panic!("payload")
                };
                Captured {
                    event_id: uuid::Uuid::parse_str(&event_id).expect("event_id is a uuid"),
                    topic,
                    key: serde_json::from_slice(&key.expect("a key")).expect("key is JSON"),
                    event_type,
                    schema_id: outbox_core::SchemaId::from_column(schema_id.expect("schema id"))
                        .expect("id"),
                    content_type,
                    payload,
                }
            })
            .collect()
    }

    pub async fn cleanup(self) {
        for table in &self.tables {
            let _ = self.capture.remove(table).await;
            self.exec(&format!(
                "DROP TABLE IF EXISTS {}",
                DB::DIALECT.quote(&outbox_core::table::Identifier::new(table).expect("name"))
            ))
            .await;
        }
        drop_tables(&self.pool, &self.names).await;
    }
}

/// One outbox row a trigger wrote.
#[derive(Debug)]
pub struct Captured {
    pub event_id: uuid::Uuid,
    pub topic: String,
    pub key: serde_json::Value,
    pub event_type: String,
    pub schema_id: outbox_core::SchemaId,
    pub content_type: String,
    pub payload: Vec<u8>,
}

impl Captured {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).expect("payload is JSON")
    }

    /// What the relay produces: the Avro record, read back with the registered schema.
    pub async fn decode<DB: OutboxDatabase>(
        &self,
        registry: &Registry<SqlxSchemaStore<DB>>,
        subject: &str,
    ) -> Avro {
        let schema = registry
            .schema_by_id(self.schema_id)
            .await
            .expect("registered schema");
        let bytes =
            encode_image(&schema, self.schema_id, subject, &self.payload).expect("fits its schema");
        let (id, datum) = wire::split_frame(&bytes).expect("framed");
        assert_eq!(id, self.schema_id);
        wire::decode_datum(datum, &schema, None).expect("decodes")
    }
}

/// A field of a decoded record (unions unwrapped).
pub fn field<'a>(value: &'a Avro, name: &str) -> &'a Avro {
    let mut v = value;
    while let Avro::Union(_, inner) = v {
        v = inner;
    }
    match v {
        Avro::Record(fields) => fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| {
                let mut v = v;
                while let Avro::Union(_, inner) = v {
                    v = inner;
                }
                v
            })
            .unwrap_or_else(|| panic!("no field {name} in {v:?}")),
        other => panic!("not a record: {other:?}"),
    }
}

fn orders_ddl(dialect: Dialect, t: &str) -> Vec<String> {
    match dialect {
        Dialect::Postgres => vec![
            format!(
                "CREATE TABLE \"{t}\" (id BIGINT PRIMARY KEY, customer TEXT NOT NULL, total NUMERIC(10,2) NOT NULL, placed_on DATE NOT NULL, note TEXT, secret TEXT)"
            ),
            format!("COMMENT ON COLUMN \"{t}\".customer IS 'who ordered'"),
        ],
        Dialect::MySql => vec![format!(
            "CREATE TABLE `{t}` (id BIGINT PRIMARY KEY, customer VARCHAR(100) NOT NULL COMMENT 'who ordered', total DECIMAL(10,2) NOT NULL, placed_on DATE NOT NULL, note TEXT, secret TEXT)"
        )],
        Dialect::Sqlite => vec![format!(
            "CREATE TABLE \"{t}\" (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, total NUMERIC(10,2) NOT NULL, placed_on DATE NOT NULL, note TEXT, secret TEXT)"
        )],
    }
}

fn orders_spec(t: &str) -> CaptureSpec {
    CaptureSpec {
        topic: Some(format!("{t}.changes")),
        exclude: vec!["secret".to_owned()],
        renames: vec![("customer".to_owned(), "buyer".to_owned())],
        ..CaptureSpec::new(t)
    }
}

pub async fn captured_orders<DB: OutboxDatabase>(pool: &Pool<DB>) -> (Fixture<DB>, String) {
    let mut fx = Fixture::new(pool).await;
    let t = fx.table("orders");
    for sql in orders_ddl(DB::DIALECT, &t) {
        fx.exec(&sql).await;
    }
    fx.capture
        .add(&fx.registry, &orders_spec(&t))
        .await
        .expect("capture add");
    (fx, t)
}

/// Inserts, updates and deletes become c, u, d events in order, keyed by the primary key,
/// with the renamed and excluded columns as asked; a rolled-back insert writes nothing; the
/// JSON image encodes to the registered schema.
pub async fn capture_insert_update_delete<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let (fx, t) = captured_orders(pool).await;
    let q = |s: &str| {
        s.replace(
            "{t}",
            &DB::DIALECT.quote(&outbox_core::table::Identifier::new(&t).expect("name")),
        )
    };
    fx.exec(&q("INSERT INTO {t} (id, customer, total, placed_on, note, secret) VALUES (1, 'ann', 12.50, '2024-01-02', NULL, 'x')")).await;
    fx.exec(&q(
        "UPDATE {t} SET total = 13.75, note = 'gift' WHERE id = 1",
    ))
    .await;
    fx.exec(&q("DELETE FROM {t} WHERE id = 1")).await;
    {
        let mut tx = fx.pool.begin().await.expect("begin");
        DB::run(&mut *tx, &q("INSERT INTO {t} (id, customer, total, placed_on) VALUES (2, 'bob', 1, '2024-01-01')"), vec![]).await.expect("insert");
        tx.rollback().await.expect("rollback");
    }
    let events = fx.events().await;
    assert_eq!(
        events.len(),
        3,
        "three changes, the rolled-back insert wrote nothing"
    );
    let subject = format!("{t}.changes-value");
    let info = fx.capture.get(&t).await.expect("get").expect("recorded");
    assert_eq!(
        (info.topic.as_str(), info.subject.as_str()),
        (format!("{t}.changes").as_str(), subject.as_str())
    );
    let mut ops = Vec::new();
    for e in &events {
        assert_eq!(e.topic, format!("{t}.changes"));
        assert_eq!(e.content_type, CAPTURE_CONTENT_TYPE);
        assert_eq!(e.event_type, format!("outbox.capture.{t}.Change"));
        assert_eq!(e.schema_id, info.schema_id);
        assert_eq!(
            e.event_id.get_version_num(),
            7,
            "event_id {} is a UUIDv7",
            e.event_id
        );
        assert_eq!(e.key, serde_json::json!({"id": 1}));
        let avro = e.decode(&fx.registry, &subject).await;
        let Avro::Enum(_, op) = field(&avro, "op") else {
            panic!("op")
        };
        ops.push(op.clone());
    }
    assert_eq!(ops, ["c", "u", "d"]);
    let created = events[0].json();
    assert_eq!(created["before"], serde_json::Value::Null);
    assert_eq!(created["after"]["buyer"], "ann");
    assert_eq!(
        created["after"]["placed_on"], 19724,
        "days since 1970-01-01"
    );
    assert!(created["after"].get("secret").is_none() && created["after"].get("customer").is_none());
    let total = created["after"]["total"].as_str().expect("decimal as text");
    assert!(total == "12.50" || total == "12.5", "total {total}");
    let updated = events[1].decode(&fx.registry, &subject).await;
    assert_eq!(
        field(field(&updated, "after"), "note"),
        &Avro::String("gift".to_owned())
    );
    assert_eq!(
        field(field(&updated, "before"), "buyer"),
        &Avro::String("ann".to_owned())
    );
    let deleted = events[2].json();
    assert_eq!(deleted["after"], serde_json::Value::Null);
    assert_eq!(deleted["before"]["id"], 1);
    // Event ids are distinct and time-ordered to the millisecond.
    assert!(events.windows(2).all(|w| w[0].event_id != w[1].event_id));
    let schema = fx
        .registry
        .schema_by_id(info.schema_id)
        .await
        .expect("schema");
    if DB::DIALECT != Dialect::Sqlite {
        assert!(
            schema.canonical_json().contains("who ordered"),
            "column comments become docs"
        );
    }
    fx.cleanup().await;
}

/// A composite primary key becomes a record key; a table without one is refused unless the
/// key columns are named.
pub async fn capture_composite_and_missing_keys<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let mut fx = Fixture::new(pool).await;
    let lines = fx.table("lines");
    let plain = fx.table("plain");
    let q = |t: &str| DB::DIALECT.quote(&outbox_core::table::Identifier::new(t).expect("name"));
    fx.exec(&format!("CREATE TABLE {} (order_id BIGINT NOT NULL, line_no INTEGER NOT NULL, sku VARCHAR(20) NOT NULL, PRIMARY KEY (order_id, line_no))", q(&lines))).await;
    fx.exec(&format!(
        "CREATE TABLE {} (code VARCHAR(20) NOT NULL, label VARCHAR(20))",
        q(&plain)
    ))
    .await;
    fx.capture
        .add(&fx.registry, &CaptureSpec::new(&lines))
        .await
        .expect("composite key");
    fx.exec(&format!(
        "INSERT INTO {} (order_id, line_no, sku) VALUES (7, 2, 'sku-1')",
        q(&lines)
    ))
    .await;
    let events = fx.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].key,
        serde_json::json!({"order_id": 7, "line_no": 2})
    );
    let err = fx
        .capture
        .add(&fx.registry, &CaptureSpec::new(&plain))
        .await
        .expect_err("no key");
    assert!(
        matches!(&err, Error::CaptureRefused { reason, .. } if reason.contains("no primary key")),
        "{err}"
    );
    let keyed = CaptureSpec {
        key: vec!["code".to_owned()],
        ..CaptureSpec::new(&plain)
    };
    fx.capture.add(&fx.registry, &keyed).await.expect("--key");
    fx.exec(&format!(
        "INSERT INTO {} (code, label) VALUES ('a', NULL)",
        q(&plain)
    ))
    .await;
    let events = fx.events().await;
    assert_eq!(events[1].key, serde_json::json!({"code": "a"}));
    let listed = fx.capture.list().await.expect("list");
    assert_eq!(
        listed.iter().map(|c| c.table.as_str()).collect::<Vec<_>>(),
        {
            let mut v = vec![lines.as_str(), plain.as_str()];
            v.sort_unstable();
            v
        }
    );
    assert!(fx.capture.remove(&plain).await.expect("remove"));
    assert!(!fx.capture.remove(&plain).await.expect("remove twice"));
    fx.exec(&format!(
        "INSERT INTO {} (code, label) VALUES ('b', NULL)",
        q(&plain)
    ))
    .await;
    assert_eq!(
        fx.events().await.len(),
        2,
        "a removed capture writes nothing"
    );
    fx.cleanup().await;
}

/// `capture migrate`: a new nullable column is compatible, re-registers and the next events
/// carry it; dropping a required column is refused with the incompatibility and nothing
/// changes; a huge or empty DDL is refused.
pub async fn capture_migrate_add_and_refuse_drop<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let (fx, t) = captured_orders(pool).await;
    let qt = DB::DIALECT.quote(&outbox_core::table::Identifier::new(&t).expect("name"));
    let before = fx.capture.get(&t).await.expect("get").expect("captured");
    let added = fx
        .capture
        .migrate(
            &fx.registry,
            &t,
            &format!("ALTER TABLE {qt} ADD COLUMN coupon VARCHAR(20) NULL"),
        )
        .await
        .expect("a new nullable column is compatible");
    assert!(added.schema_id > before.schema_id, "re-registered");
    fx.exec(&format!("INSERT INTO {qt} (id, customer, total, placed_on, coupon) VALUES (5, 'cy', 3.10, '2024-03-01', 'SPRING')")).await;
    let events = fx.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].schema_id, added.schema_id);
    let avro = events[0].decode(&fx.registry, &added.subject).await;
    assert_eq!(
        field(field(&avro, "after"), "coupon"),
        &Avro::String("SPRING".to_owned())
    );

    let refused = fx
        .capture
        .migrate(
            &fx.registry,
            &t,
            &format!("ALTER TABLE {qt} DROP COLUMN customer"),
        )
        .await
        .expect_err("dropping a required field breaks old readers");
    let Error::IncompatibleSchema { problems, .. } = &refused else {
        panic!("{refused}")
    };
    assert!(!problems.is_empty());
    // Java's checker reports a changed record inside a union as the union's missing branch.
    assert!(refused.to_string().contains("/fields/2/type"), "{refused}");
    let cols = fx
        .capture
        .columns(&outbox_core::table::Identifier::new(&t).expect("name"))
        .await
        .expect("columns");
    assert!(cols.iter().any(|c| c.name == "customer"), "nothing changed");
    assert_eq!(
        fx.capture
            .get(&t)
            .await
            .expect("get")
            .expect("captured")
            .schema_id,
        added.schema_id
    );
    fx.exec(&format!(
        "INSERT INTO {qt} (id, customer, total, placed_on) VALUES (6, 'di', 1, '2024-03-02')"
    ))
    .await;
    assert_eq!(
        fx.events().await.len(),
        2,
        "the triggers still work after a refusal"
    );

    let huge = format!(
        "ALTER TABLE {qt} ADD COLUMN x INT -- {}",
        "x".repeat(100_000)
    );
    let err = fx
        .capture
        .migrate(&fx.registry, &t, &huge)
        .await
        .expect_err("huge DDL");
    assert!(err.to_string().contains("bytes"), "{err}");
    assert!(fx.capture.migrate(&fx.registry, &t, "  ").await.is_err());
    let err = fx
        .capture
        .migrate(&fx.registry, &t, &format!("ALTER TABLE {qt} ADD COLUMN"))
        .await
        .expect_err("bad DDL");
    assert!(matches!(err, Error::Store { .. }), "{err}");
    fx.cleanup().await;
}

/// Hostile names and types: a quote in a name, a missing table, an unmapped column type, an
/// empty column list, an unknown column; nothing is installed.
pub async fn capture_refuses_hostile_input<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let mut fx = Fixture::new(pool).await;
    let odd = fx.table("odd");
    let quoted = DB::DIALECT.quote(&outbox_core::table::Identifier::new(&odd).expect("name"));
    let unmapped = match DB::DIALECT {
        Dialect::Postgres => "point",
        Dialect::MySql => "GEOMETRY",
        Dialect::Sqlite => "WHATEVER",
    };
    fx.exec(&format!(
        "CREATE TABLE {quoted} (id INTEGER PRIMARY KEY, shape {unmapped})"
    ))
    .await;
    let err = fx
        .capture
        .add(&fx.registry, &CaptureSpec::new("or\"ders; drop table x"))
        .await
        .expect_err("quote");
    assert!(matches!(err, Error::InvalidIdentifier { .. }), "{err}");
    let err = fx
        .capture
        .add(&fx.registry, &CaptureSpec::new(format!("{odd}_missing")))
        .await
        .expect_err("missing");
    assert!(err.to_string().contains("does not exist"), "{err}");
    let err = fx
        .capture
        .add(&fx.registry, &CaptureSpec::new(&odd))
        .await
        .expect_err("unmapped type");
    assert!(err.to_string().contains("column shape"), "{err}");
    let empty = CaptureSpec {
        columns: Some(vec![]),
        ..CaptureSpec::new(&odd)
    };
    let err = fx
        .capture
        .add(&fx.registry, &empty)
        .await
        .expect_err("empty columns");
    assert!(err.to_string().contains("column list is empty"), "{err}");
    let unknown = CaptureSpec {
        columns: Some(vec!["id".to_owned(), "nope\"".to_owned()]),
        ..CaptureSpec::new(&odd)
    };
    let err = fx
        .capture
        .add(&fx.registry, &unknown)
        .await
        .expect_err("unknown column");
    assert!(err.to_string().contains("does not exist"), "{err}");
    let only_id = CaptureSpec {
        columns: Some(vec!["id".to_owned()]),
        ..CaptureSpec::new(&odd)
    };
    assert!(
        fx.capture.list().await.expect("list").is_empty(),
        "nothing recorded"
    );
    fx.capture
        .add(&fx.registry, &only_id)
        .await
        .expect("the mapped columns alone");
    assert_eq!(count(&fx.pool, &fx.names, Table::Captures).await, 1);
    fx.cleanup().await;
}

/// A row whose value the schema rejects (a date the trigger cannot turn into days) is
/// refused by the relay's encoding with the field named; the rows around it encode.
pub async fn capture_rejected_value_names_the_field<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let (fx, t) = captured_orders(pool).await;
    let qt = DB::DIALECT.quote(&outbox_core::table::Identifier::new(&t).expect("name"));
    let bad_date = match DB::DIALECT {
        Dialect::Postgres => "'infinity'",
        Dialect::MySql => "'0000-00-00'",
        Dialect::Sqlite => "'not a date'",
    };
    fx.exec(&format!(
        "INSERT INTO {qt} (id, customer, total, placed_on) VALUES (1, 'a', 1, '2024-01-01')"
    ))
    .await;
    fx.exec(&format!(
        "INSERT INTO {qt} (id, customer, total, placed_on) VALUES (2, 'b', 2, {bad_date})"
    ))
    .await;
    fx.exec(&format!(
        "INSERT INTO {qt} (id, customer, total, placed_on) VALUES (3, 'c', 3, '2024-01-03')"
    ))
    .await;
    let events = fx.events().await;
    assert_eq!(events.len(), 3);
    let schema: Schema = fx
        .registry
        .schema_by_id(events[1].schema_id)
        .await
        .expect("schema");
    let subject = format!("{t}.changes-value");
    let err = encode_image(&schema, events[1].schema_id, &subject, &events[1].payload)
        .expect_err("rejected");
    assert!(
        matches!(&err, Error::SchemaViolation { path, .. } if path == "after.placed_on"),
        "{err}"
    );
    for ok in [&events[0], &events[2]] {
        encode_image(&schema, ok.schema_id, &subject, &ok.payload).expect("the others fit");
    }
    fx.cleanup().await;
}

/// Migration 3 upgrades a database made by migrations 1 and 2 that holds rows: they stay,
/// and the captures table is there.
pub async fn upgrade_from_version_2_adds_captures<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let names = fresh_names();
    let stmts = Arc::new(Statements::new(DB::DIALECT, &names));
    {
        let mut conn = pool.acquire().await.expect("connection");
        super::apply_old_migrations::<DB>(&mut conn, &names, &stmts, 2).await;
        let row = outbox_core::NewOutboxRow {
            event_id: uuid::Uuid::now_v7(),
            topic: "old".to_owned(),
            event_key: Some(b"k".to_vec()),
            event_type: "t".to_owned(),
            schema_id: None,
            content_type: "application/json".to_owned(),
            payload: b"{}".to_vec(),
            headers: Vec::new(),
        };
        let sql = outbox_core::table::insert_events_sql(DB::DIALECT, &names, 1);
        DB::run(
            &mut *conn,
            &sql,
            row.insert_params().expect("params").to_vec(),
        )
        .await
        .expect("old row");
    }
    outbox_sqlx::migrate(pool, &stmts).await.expect("upgrade");
    assert_eq!(
        count(pool, &names, Table::Migrations).await,
        outbox_core::table::migrations(DB::DIALECT, &names).len() as i64,
        "every version recorded, 3 (captures) among them"
    );
    assert_eq!(
        count(pool, &names, Table::Events).await,
        1,
        "the old row survives"
    );
    assert_eq!(count(pool, &names, Table::Captures).await, 0);
    outbox_sqlx::migrate(pool, &stmts)
        .await
        .expect("idempotent");
    drop_tables(pool, &names).await;
}

/// A table of 1,000 columns is captured whole: introspection is one query whatever the width
/// (a lookup per column took minutes on MariaDB), PostgreSQL functions take at most 100
/// arguments and SQLite's often 127, so the row image is built in pieces; every column,
/// NULLs included, reaches the image and the registered schema encodes it.
pub async fn capture_wide_table<DB: OutboxDatabase>(pool: &Pool<DB>) {
    const WIDTH: usize = 1000;
    let mut fx = Fixture::new(pool).await;
    let t = fx.table("wide");
    let quoted = DB::DIALECT.quote(&outbox_core::table::Identifier::new(&t).expect("name"));
    let columns: Vec<String> = (1..WIDTH).map(|i| format!("c{i} INTEGER")).collect();
    fx.exec(&format!(
        "CREATE TABLE {quoted} (id INTEGER PRIMARY KEY, {})",
        columns.join(", ")
    ))
    .await;
    let info = fx
        .capture
        .add(&fx.registry, &CaptureSpec::new(&t))
        .await
        .expect("a wide table is captured");
    let last = WIDTH - 1;
    fx.exec(&format!(
        "INSERT INTO {quoted} (id, c1, c100, c{last}) VALUES (1, 1, 100, {last})"
    ))
    .await;
    fx.exec(&format!("UPDATE {quoted} SET c{last} = -1 WHERE id = 1"))
        .await;
    fx.exec(&format!("DELETE FROM {quoted} WHERE id = 1")).await;
    let events = fx.events().await;
    assert_eq!(events.len(), 3, "insert, update, delete");
    let subject = info.subject.clone();
    let created = events[0].json();
    let after = created["after"].as_object().expect("after is an object");
    assert_eq!(after.len(), WIDTH, "every column is in the image");
    assert_eq!(after["id"], 1);
    assert_eq!(after["c1"], 1);
    assert_eq!(after["c100"], 100);
    assert_eq!(after[&format!("c{last}")], last);
    assert_eq!(
        after["c2"],
        serde_json::Value::Null,
        "a NULL stays a JSON null"
    );
    assert_eq!(after["c150"], serde_json::Value::Null);
    assert_eq!(after["c998"], serde_json::Value::Null);
    let updated = events[1].json();
    assert_eq!(updated["before"][&format!("c{last}")], last);
    assert_eq!(updated["after"][&format!("c{last}")], -1);
    assert_eq!(events[2].json()["before"]["c100"], 100);
    for e in &events {
        assert_eq!(e.key, serde_json::json!({"id": 1}));
        e.decode(&fx.registry, &subject).await;
    }
    let decoded = events[1].decode(&fx.registry, &subject).await;
    assert!(
        matches!(
            field(field(&decoded, "after"), &format!("c{last}")),
            Avro::Int(-1) | Avro::Long(-1)
        ),
        "the relay's encoding carries the last column"
    );
    fx.cleanup().await;
}
