//! Capture as a DBA with odd tables and an attacker who controls table contents would use
//! it: odd names, extreme values, misused commands. Each gets a typed error or a dead letter
//! naming the field, never a broken application write, and the other rows keep flowing.

use outbox_core::Error;
use outbox_core::avro::types::Value as Avro;
use outbox_core::capture::{CaptureSpec, encode_image};
use outbox_core::table::{Dialect, Identifier};
use outbox_sqlx::OutboxDatabase;
use sqlx::Pool;

use super::capture::{Fixture, captured_orders, field};

fn quote<DB: OutboxDatabase>(name: &str) -> String {
    DB::DIALECT.quote(&Identifier::new(name).expect("name"))
}

/// A column name of any text, quoted as the dialect does (`"` or a backtick, doubled).
fn quote_any(dialect: Dialect, name: &str) -> String {
    match dialect {
        Dialect::MySql => format!("`{}`", name.replace('`', "``")),
        Dialect::Postgres | Dialect::Sqlite => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

async fn columns<DB: OutboxDatabase>(fx: &Fixture<DB>, table: &str) -> Vec<String> {
    let ident = Identifier::new(table).expect("name");
    let cols = fx.capture.columns(&ident).await.expect("columns");
    cols.into_iter().map(|c| c.name).collect()
}

fn refused(err: &Error, says: &str) -> bool {
    matches!(err, Error::CaptureRefused { reason, .. } if reason.contains(says))
}

/// `add` twice replaces the capture (one event per change), `remove` of an unknown table
/// says so, `migrate` refuses DDL that is not one ALTER of that table (another table, a
/// second statement, a DROP, a rename) with nothing changed; a savepoint rolled back writes
/// nothing; after all of it the triggers still write.
pub async fn capture_misused_commands<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let (mut fx, t) = captured_orders(pool).await;
    let other = fx.table("other");
    let (qt, qo) = (quote::<DB>(&t), quote::<DB>(&other));
    fx.exec(&format!("CREATE TABLE {qo} (id INTEGER PRIMARY KEY)"))
        .await;
    let first = fx.capture.get(&t).await.expect("get").expect("captured");
    let again = fx
        .capture
        .add(&fx.registry, &first.spec)
        .await
        .expect("add again");
    assert_eq!(again.schema_id, first.schema_id, "the same schema");
    assert_eq!(fx.capture.list().await.expect("list").len(), 1);
    fx.exec(&format!(
        "INSERT INTO {qt} (id, customer, total, placed_on) VALUES (1, 'a', 1, '2024-01-01')"
    ))
    .await;
    assert_eq!(fx.events().await.len(), 1, "one event, not one per add");

    assert!(
        !fx.capture
            .remove(&format!("{t}_nope"))
            .await
            .expect("unknown"),
        "an unknown table is not captured"
    );
    let err = fx.capture.remove("x; drop table y").await.expect_err("bad");
    assert!(matches!(err, Error::InvalidIdentifier { .. }), "{err}");
    let err = fx
        .capture
        .migrate(
            &fx.registry,
            &other,
            &format!("ALTER TABLE {qo} ADD COLUMN a INT"),
        )
        .await
        .expect_err("not captured");
    assert!(refused(&err, "not captured"), "{err}");

    let attempts = [
        (
            format!("ALTER TABLE {qo} ADD COLUMN extra INT"),
            "not the captured table",
        ),
        (
            format!("ALTER TABLE {qt} ADD COLUMN a INT NULL; DROP TABLE {qo}"),
            "several statements",
        ),
        (format!("DROP TABLE {qt}"), "only ALTER TABLE"),
        (format!("DROP TABLE {qo}"), "only ALTER TABLE"),
        (
            format!(
                "CREATE TABLE {} (id INT)",
                quote::<DB>(&format!("{other}2"))
            ),
            "only ALTER TABLE",
        ),
        (
            format!(
                "ALTER TABLE {qt} RENAME TO {}",
                quote::<DB>(&format!("{t}2"))
            ),
            "does not exist",
        ),
    ];
    for (ddl, says) in &attempts {
        let err = fx
            .capture
            .migrate(&fx.registry, &t, ddl)
            .await
            .expect_err(ddl);
        assert!(refused(&err, says), "{ddl}: {err}");
    }
    assert_eq!(
        columns(&fx, &other).await,
        ["id"],
        "the other table is untouched"
    );
    assert_eq!(
        columns(&fx, &t).await.len(),
        6,
        "the captured table is untouched"
    );
    assert_eq!(
        fx.capture
            .get(&t)
            .await
            .expect("get")
            .expect("captured")
            .schema_id,
        first.schema_id
    );

    {
        let mut tx = fx.pool.begin().await.expect("begin");
        for sql in [
            format!(
                "INSERT INTO {qt} (id, customer, total, placed_on) VALUES (2, 'b', 2, '2024-01-02')"
            ),
            "SAVEPOINT s".to_owned(),
            format!(
                "INSERT INTO {qt} (id, customer, total, placed_on) VALUES (3, 'c', 3, '2024-01-03')"
            ),
            "ROLLBACK TO SAVEPOINT s".to_owned(),
        ] {
            DB::run(&mut *tx, &sql, vec![]).await.expect(&sql);
        }
        tx.commit().await.expect("commit");
    }
    let events = fx.events().await;
    let keys: Vec<_> = events.iter().map(|e| e.key["id"].clone()).collect();
    assert_eq!(keys, [1, 2], "the rolled-back savepoint wrote nothing");
    fx.cleanup().await;
}

/// A table whose name has the greatest length accepted (63) and columns named by reserved
/// words and in mixed case is captured and removed; a column whose name is not a safe
/// identifier (a space, a quote, a backtick, a letter outside ASCII) is refused naming it,
/// and the rest is captured when it is left out.
pub async fn capture_odd_names<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let mut fx = Fixture::new(pool).await;
    let base = fx.table("x");
    let long = format!("{base}{}", "y".repeat(63 - base.len()));
    fx.tables.push(long.clone());
    let ql = quote::<DB>(&long);
    let d = DB::DIALECT;
    let reserved = ["order", "select", "user", "Total", "key"];
    let cols: Vec<String> = reserved
        .iter()
        .map(|c| format!("{} INTEGER", quote_any(d, c)))
        .collect();
    fx.exec(&format!(
        "CREATE TABLE {ql} (id INTEGER PRIMARY KEY, {})",
        cols.join(", ")
    ))
    .await;
    let info = fx
        .capture
        .add(&fx.registry, &CaptureSpec::new(&long))
        .await
        .expect("a 63-character table name is captured");
    let names: Vec<String> = reserved.iter().map(|c| quote_any(d, c)).collect();
    fx.exec(&format!(
        "INSERT INTO {ql} (id, {}) VALUES (1, 1, 2, 3, 4, 5)",
        names.join(", ")
    ))
    .await;
    let events = fx.events().await;
    assert_eq!(events.len(), 1);
    let after = &events[0].json()["after"];
    for (i, c) in reserved.iter().enumerate() {
        assert_eq!(after[c], i + 1, "{c}");
    }
    let avro = events[0].decode(&fx.registry, &info.subject).await;
    assert!(matches!(
        field(field(&avro, "after"), "Total"),
        Avro::Int(4) | Avro::Long(4)
    ));
    assert!(fx.capture.remove(&long).await.expect("remove"));
    fx.exec(&format!("DELETE FROM {ql} WHERE id = 1")).await;
    assert_eq!(fx.events().await.len(), 1, "its triggers are gone");

    let odd = fx.table("odd");
    let qd = quote::<DB>(&odd);
    for column in [
        "my col",
        "a\"quote",
        "a`tick",
        "prix_é",
        "x'); DROP TABLE y; --",
    ] {
        fx.exec(&format!(
            "CREATE TABLE {qd} (id INTEGER PRIMARY KEY, {} INTEGER)",
            quote_any(d, column)
        ))
        .await;
        let err = fx
            .capture
            .add(&fx.registry, &CaptureSpec::new(&odd))
            .await
            .expect_err(column);
        assert!(
            refused(&err, &format!("column {column:?}")) && err.to_string().contains("--exclude"),
            "{column}: {err}"
        );
        let rest = CaptureSpec {
            exclude: vec![column.to_owned()],
            ..CaptureSpec::new(&odd)
        };
        fx.capture
            .add(&fx.registry, &rest)
            .await
            .expect("the rest is captured");
        assert!(fx.capture.remove(&odd).await.expect("remove"));
        fx.exec(&format!("DROP TABLE {qd}")).await;
    }
    fx.cleanup().await;
}

/// Values an attacker controls: a 10 MiB text, NULLs, NaN and infinite floats (where the
/// database stores them), a timestamp past what Avro's microseconds hold, a decimal wider
/// than its declared precision and a BLOB in a TEXT column (SQLite stores both). The
/// application's writes all succeed; each row either encodes or is refused with its field
/// named; the rows around it encode.
pub async fn capture_hostile_values<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let mut fx = Fixture::new(pool).await;
    let t = fx.table("vals");
    let qt = quote::<DB>(&t);
    let (text, double, stamp, amount) = match DB::DIALECT {
        Dialect::Postgres => ("TEXT", "DOUBLE PRECISION", "TIMESTAMP", "NUMERIC(5,2)"),
        Dialect::MySql => ("LONGTEXT", "DOUBLE", "DATETIME(6)", "DECIMAL(5,2)"),
        Dialect::Sqlite => ("TEXT", "DOUBLE", "TIMESTAMP", "NUMERIC(5,2)"),
    };
    fx.exec(&format!(
        "CREATE TABLE {qt} (id INTEGER PRIMARY KEY, body {text}, x {double}, at {stamp}, amount {amount})"
    ))
    .await;
    let info = fx
        .capture
        .add(&fx.registry, &CaptureSpec::new(&t))
        .await
        .expect("capture");
    let huge = match DB::DIALECT {
        Dialect::Postgres => "repeat('x', 10485760)",
        Dialect::MySql => "REPEAT('x', 10485760)",
        Dialect::Sqlite => "replace(hex(zeroblob(5242880)), '0', 'x')",
    };
    // (id, body, x, at, amount, the field refused or None)
    let too_large = (DB::DIALECT == Dialect::MySql).then_some("before");
    let mut rows = vec![
        ("1", huge, "1.5", "'2024-01-01 00:00:00'", "1.25", too_large),
        ("2", "NULL", "NULL", "NULL", "NULL", None),
    ];
    match DB::DIALECT {
        Dialect::Postgres => rows.extend([
            ("3", "''", "'NaN'", "NULL", "0", None),
            (
                "4",
                "''",
                "'Infinity'",
                "'-infinity'",
                "0",
                Some("after.at"),
            ),
            (
                "5",
                "''",
                "'-Infinity'",
                "'294276-12-31 23:59:59'",
                "0",
                Some("after.at"),
            ),
        ]),
        Dialect::Sqlite => rows.extend([
            ("3", "''", "9e999", "NULL", "0", None),
            (
                "4",
                "''",
                "-9e999",
                "NULL",
                "123456.789",
                Some("after.amount"),
            ),
            // SQLite keeps a BLOB in a TEXT column as it is.
            ("5", "x'00ff'", "NULL", "NULL", "0", Some("after.body")),
            // Text that is no time, in a nullable column: refused, not made NULL.
            ("6", "''", "NULL", "'not a time'", "0", Some("after.at")),
        ]),
        Dialect::MySql => rows.push((
            "3",
            "''",
            "-1e308",
            "'9999-12-31 23:59:59.999999'",
            "-999.99",
            None,
        )),
    }
    if DB::DIALECT == Dialect::MySql {
        // A zero date in a nullable column: refused, not made NULL.
        rows.push((
            "4",
            "''",
            "0",
            "'0000-00-00 00:00:00'",
            "0",
            Some("after.at"),
        ));
    }
    for (id, body, x, at, amount, _) in &rows {
        fx.exec(&format!(
            "INSERT INTO {qt} (id, body, x, at, amount) VALUES ({id}, {body}, {x}, {at}, {amount})"
        ))
        .await;
    }
    fx.exec(&format!("UPDATE {qt} SET id = 100 WHERE id = 1"))
        .await;
    let events = fx.events().await;
    assert_eq!(
        events.len(),
        rows.len() + 1,
        "every write succeeded and was captured"
    );
    let schema = fx
        .registry
        .schema_by_id(info.schema_id)
        .await
        .expect("schema");
    for (event, (id, .., refused_field)) in events.iter().zip(&rows) {
        let encoded = encode_image(&schema, event.schema_id, &info.subject, &event.payload);
        match refused_field {
            None => {
                encoded.unwrap_or_else(|e| panic!("row {id} encodes: {e}"));
            }
            Some(path) => {
                let err = encoded.expect_err(id);
                assert!(
                    matches!(&err, Error::SchemaViolation { path: p, .. } if p == path),
                    "row {id}: {err}"
                );
            }
        }
    }
    let update = events.last().expect("update");
    let update = encode_image(&schema, update.schema_id, &info.subject, &update.payload);
    if DB::DIALECT == Dialect::MySql {
        // JSON_OBJECT's result is capped at max_allowed_packet (16 MiB): the rows too large
        // for it are dead-lettered, saying why, instead of failing the write.
        let err = update.expect_err("too large for MySQL's JSON_OBJECT");
        assert!(
            matches!(&err, Error::SchemaViolation { path, reason, .. }
                if path == "before" && reason.contains("max_allowed_packet")),
            "{err}"
        );
    } else {
        update.expect("the update of the 10 MiB row (before and after) encodes");
        let first = events[0].decode(&fx.registry, &info.subject).await;
        let Avro::String(body) = field(field(&first, "after"), "body") else {
            panic!("body")
        };
        assert_eq!(body.len(), 10 * 1024 * 1024, "the 10 MiB text is whole");
    }
    if DB::DIALECT == Dialect::MySql {
        // A zero TIMESTAMP is no point in time: refused, not published as 1970-01-01.
        let z = fx.table("zero");
        let qz = quote::<DB>(&z);
        fx.exec(&format!(
            "CREATE TABLE {qz} (id INTEGER PRIMARY KEY, ts TIMESTAMP NOT NULL DEFAULT '2000-01-01 00:00:00')"
        ))
        .await;
        let zero = fx
            .capture
            .add(&fx.registry, &CaptureSpec::new(&z))
            .await
            .expect("capture");
        fx.exec(&format!(
            "INSERT INTO {qz} (id, ts) VALUES (1, '0000-00-00 00:00:00'), (2, '2001-01-01 00:00:00')"
        ))
        .await;
        let schema = fx
            .registry
            .schema_by_id(zero.schema_id)
            .await
            .expect("schema");
        let events = fx.events().await;
        let mine: Vec<_> = events.iter().filter(|e| e.topic == z).collect();
        assert_eq!(mine.len(), 2);
        let err = encode_image(&schema, mine[0].schema_id, &zero.subject, &mine[0].payload)
            .expect_err("a zero timestamp");
        assert!(
            matches!(&err, Error::SchemaViolation { path, .. } if path == "after.ts"),
            "{err}"
        );
        encode_image(&schema, mine[1].schema_id, &zero.subject, &mine[1].payload)
            .expect("a real TIMESTAMP encodes");
    } else {
        let third = events[2].decode(&fx.registry, &info.subject).await;
        let Avro::Double(x) = field(field(&third, "after"), "x") else {
            panic!("x")
        };
        assert!(x.is_nan() || x.is_infinite(), "{x}");
    }
    fx.cleanup().await;
}

/// Column types of each database with a sample value: (declared type, SQL literal).
fn every_type(dialect: Dialect) -> Vec<(&'static str, &'static str)> {
    match dialect {
        Dialect::Postgres => vec![
            ("smallint", "-32768"),
            ("integer", "2147483647"),
            ("bigint", "-9223372036854775808"),
            ("real", "1.5"),
            ("double precision", "2.5e300"),
            ("numeric(10,2)", "-12345678.91"),
            ("numeric(76,0)", "1"),
            ("numeric", "1"),
            ("numeric(1000,0)", "1"),
            ("money", "1.00"),
            ("text", "'a'"),
            ("varchar(5)", "'ab'"),
            ("char(3)", "'a'"),
            ("\"char\"", "'a'"),
            ("name", "'a'"),
            ("bytea", "'\\x00ff'"),
            ("boolean", "true"),
            ("date", "'2024-02-29'"),
            ("time", "'23:59:59.999999'"),
            ("time(3)", "'12:00:00.123'"),
            ("time with time zone", "'12:00+01'"),
            ("timestamp", "'2024-01-01 00:00:00'"),
            ("timestamp(3) with time zone", "'1900-01-01 00:00:00+00'"),
            ("interval", "'1 day'"),
            ("uuid", "'0190a8f4-0000-7000-8000-000000000000'"),
            ("json", "'{\"a\": [1, null]}'"),
            ("jsonb", "'{\"a\": 1}'"),
            ("xml", "'<a/>'"),
            ("inet", "'10.0.0.1'"),
            ("cidr", "'10.0.0.0/8'"),
            ("macaddr", "'08:00:2b:01:02:03'"),
            ("bit(3)", "B'101'"),
            ("bit varying(3)", "B'1'"),
            ("tsvector", "'a b'"),
            ("point", "'(1,2)'"),
            ("box", "'((0,0),(1,1))'"),
            ("int4range", "'[1,2)'"),
            ("integer[]", "'{1,2}'"),
            ("text[]", "'{a}'"),
            ("oid", "1"),
            ("pg_lsn", "'0/0'"),
        ],
        Dialect::MySql => vec![
            ("TINYINT", "-128"),
            ("TINYINT UNSIGNED", "255"),
            ("SMALLINT", "-32768"),
            ("MEDIUMINT UNSIGNED", "16777215"),
            ("INT", "-2147483648"),
            ("INT UNSIGNED", "4294967295"),
            ("BIGINT", "-9223372036854775808"),
            ("BIGINT UNSIGNED", "1"),
            ("BOOL", "TRUE"),
            ("FLOAT", "1.5"),
            ("DOUBLE", "-2.5e300"),
            (
                "DECIMAL(65,30)",
                "-12345678901234567890123456789012345.123456789012345678901234567890",
            ),
            ("DECIMAL", "12"),
            ("BIT(3)", "b'101'"),
            ("CHAR(3)", "'a'"),
            ("VARCHAR(5)", "'ab'"),
            ("TINYTEXT", "'a'"),
            ("MEDIUMTEXT", "'a'"),
            ("LONGTEXT", "'a'"),
            ("BINARY(3)", "x'00ff00'"),
            ("VARBINARY(5)", "x'00'"),
            ("BLOB", "x'ff'"),
            ("LONGBLOB", "x'ff'"),
            ("ENUM('a','b)')", "'b)'"),
            ("SET('a','b')", "'a,b'"),
            ("DATE", "'1000-01-01'"),
            ("DATETIME", "'9999-12-31 23:59:59'"),
            ("DATETIME(6)", "'2024-01-01 00:00:00.000001'"),
            ("TIMESTAMP(6) NULL", "'2038-01-19 03:14:07.999999'"),
            ("TIME", "'-838:59:59'"),
            ("YEAR", "2155"),
            ("JSON", "'{\"a\": 1}'"),
            ("UUID", "'0190a8f4-0000-7000-8000-000000000000'"),
            ("INET6", "'::1'"),
            ("GEOMETRY", "ST_GeomFromText('POINT(1 1)')"),
            ("POINT", "ST_GeomFromText('POINT(1 1)')"),
        ],
        Dialect::Sqlite => vec![
            ("INTEGER", "-9223372036854775808"),
            ("TINYINT", "1"),
            ("TEXT", "'a'"),
            ("VARCHAR(5)", "'abcdefgh'"),
            ("CLOB", "'a'"),
            ("BLOB", "x'00ff'"),
            ("REAL", "1.5"),
            ("DOUBLE", "2.5"),
            ("FLOAT", "3.5"),
            ("NUMERIC(10,2)", "1.25"),
            ("DECIMAL(5,0)", "12345"),
            ("NUMERIC", "1"),
            ("BOOLEAN", "1"),
            ("DATE", "'2024-02-29'"),
            ("DATETIME", "'2024-01-01 00:00:00'"),
            ("TIMESTAMP", "'2024-01-01 00:00:00.5'"),
            ("UUID", "'0190a8f4-0000-7000-8000-000000000000'"),
            ("JSON", "'{\"a\": 1}'"),
            ("ANY", "1"),
            ("", "1"),
        ],
    }
}

/// Every column type of each database is either captured (a value and a NULL encode to the
/// registered schema) or refused with the column named; never another error or a panic.
pub async fn capture_every_column_type<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let mut fx = Fixture::new(pool).await;
    let mut refused_types = Vec::new();
    for (i, (declared, sample)) in every_type(DB::DIALECT).into_iter().enumerate() {
        let t = fx.table(&format!("ty{i}"));
        let qt = quote::<DB>(&t);
        fx.exec(&format!(
            "CREATE TABLE {qt} (id INTEGER PRIMARY KEY, v {declared})"
        ))
        .await;
        match fx.capture.add(&fx.registry, &CaptureSpec::new(&t)).await {
            Ok(info) => {
                fx.exec(&format!("INSERT INTO {qt} (id, v) VALUES (1, {sample})"))
                    .await;
                fx.exec(&format!("INSERT INTO {qt} (id, v) VALUES (2, NULL)"))
                    .await;
                let schema = fx
                    .registry
                    .schema_by_id(info.schema_id)
                    .await
                    .expect("schema");
                let events = fx.events().await;
                let mine: Vec<_> = events.iter().filter(|e| e.topic == t).collect();
                assert_eq!(mine.len(), 2, "{declared}");
                for e in mine {
                    encode_image(&schema, e.schema_id, &info.subject, &e.payload).unwrap_or_else(
                        |err| {
                            panic!(
                                "{declared} {sample}: {err}: {}",
                                String::from_utf8_lossy(&e.payload)
                            )
                        },
                    );
                }
            }
            Err(err) => {
                assert!(refused(&err, "column v"), "{declared}: {err}");
                refused_types.push(declared);
            }
        }
    }
    eprintln!("refused on {:?}: {refused_types:?}", DB::DIALECT);
    fx.cleanup().await;
}
