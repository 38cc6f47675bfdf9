//! Phase 2: encode + validate against `apache_avro`'s own encoder.

use std::time::Instant;

use outbox_core::avro::AvroSchema;
use outbox_core::encode::EventCodec;

use crate::events::TenFields;
use crate::report::Report;

pub(crate) fn encode(report: &mut Report, quick: bool) -> anyhow::Result<()> {
    println!("\n2. encode + validate, 10-field record");
    let schema = outbox_core::Schema::from_avro(&TenFields::get_schema())?;
    let codec = EventCodec::new("bench-value", 1, schema);
    let event = TenFields {
        order_id: "order-123456".into(),
        customer: "customer-42".into(),
        total_cents: 123_456,
        quantity: 3,
        ratio: 0.25,
        paid: true,
        coupon: Some("SPRING".into()),
        lines: vec![1, 2, 3],
        currency: "EUR".into(),
        created_ms: 1_764_300_000_000,
    };
    let n = if quick { 10_000 } else { 300_000 };
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(codec.encode(std::hint::black_box(&event))?);
    }
    let ours = started.elapsed().as_nanos() as f64 / n as f64;
    let avro = TenFields::get_schema();
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&avro).build()?;
    let started = Instant::now();
    for _ in 0..n {
        let value = apache_avro::to_value(std::hint::black_box(&event))?.resolve(&avro)?;
        std::hint::black_box(writer.write_value_to_vec(value)?);
    }
    let theirs = started.elapsed().as_nanos() as f64 / n as f64;
    report.row(
        "encode + validate, ns/event",
        format!("{ours:.0} ns"),
        format!("apache_avro resolve+encode {theirs:.0} ns"),
    );
    report.result("encode_ns", ours);
    report.result("apache_avro_encode_ns", theirs);
    Ok(())
}
