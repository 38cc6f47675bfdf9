//! The Confluent wire format, and decoding record values back into values or typed events.

use apache_avro::types::Value;
use serde::de::DeserializeOwned;

use crate::schema::Schema;
use crate::{Error, Result, SchemaId};

/// The first byte of every Confluent-framed record value.
pub const MAGIC_BYTE: u8 = 0;

/// The most `apache_avro` may allocate at once while decoding a datum: 64 MiB, 64 times
/// [`DEFAULT_MAX_PAYLOAD_BYTES`](super::DEFAULT_MAX_PAYLOAD_BYTES).
///
/// A hostile value declares a string, bytes or array length of its choosing; without a cap
/// `apache_avro` would reserve up to its own default of 512 MiB per declared length before
/// finding the bytes missing. A genuine value within the payload limit needs far less: a
/// string or bytes field at most its own size, an array a decoded item (a few dozen bytes)
/// per wire byte.
pub const MAX_DECODE_ALLOCATION_BYTES: usize = 64 * super::DEFAULT_MAX_PAYLOAD_BYTES;

/// Sets `apache_avro`'s process-wide allocation cap to [`MAX_DECODE_ALLOCATION_BYTES`] unless
/// the application set one first (then that one stays, as `apache_avro` keeps the first).
/// Returns the cap in force.
pub fn cap_decode_allocations() -> usize {
    apache_avro::util::max_allocation_bytes(MAX_DECODE_ALLOCATION_BYTES)
}

/// Splits a Confluent-framed record value into its schema id and Avro datum.
///
/// # Errors
///
/// [`Error::Decode`] when the value is shorter than the 5-byte header or does not start with
/// the magic byte.
pub fn split_frame(record_value: &[u8]) -> Result<(SchemaId, &[u8])> {
    match record_value {
        [MAGIC_BYTE, a, b, c, d, datum @ ..] => {
            Ok((SchemaId::new(u32::from_be_bytes([*a, *b, *c, *d])), datum))
        }
        [other, ..] if *other != MAGIC_BYTE => Err(Error::Decode {
            reason: format!("unknown magic byte {other:#04x} (expected 0x00)"),
        }),
        _ => Err(Error::Decode {
            reason: format!(
                "record value of {} bytes is shorter than the 5-byte header",
                record_value.len()
            ),
        }),
    }
}

/// Decodes an Avro datum written with `writer`, resolved to `reader` when given (so a consumer
/// on an older schema reads newer data).
///
/// # Errors
///
/// [`Error::Decode`] when the bytes do not fit the schemas, or declare a length whose
/// allocation would pass [`MAX_DECODE_ALLOCATION_BYTES`].
pub fn decode_datum(datum: &[u8], writer: &Schema, reader: Option<&Schema>) -> Result<Value> {
    // Before the first read: apache_avro fixes its cap on first use.
    cap_decode_allocations();
    let writer = writer.to_avro()?;
    let reader = reader.map(Schema::to_avro).transpose()?;
    let decode_error = |e: apache_avro::Error| Error::Decode {
        reason: e.to_string(),
    };
    let mut bytes = datum;
    let value = apache_avro::reader::datum::GenericDatumReader::builder(&writer)
        .maybe_reader_schema(reader.as_ref())
        .build()
        .map_err(decode_error)?
        .read_value(&mut bytes)
        .map_err(decode_error)?;
    if !bytes.is_empty() {
        return Err(Error::Decode {
            reason: format!("{} bytes left after the datum", bytes.len()),
        });
    }
    Ok(value)
}

/// Decodes a Confluent-framed record value into a typed event. `writer_for_id` looks up the
/// schema a record was written with (a registry); `reader` is the consumer's own schema.
///
/// # Errors
///
/// [`Error::Decode`] for malformed values, whatever `writer_for_id` returns for an unknown id.
pub fn decode<T: DeserializeOwned>(
    record_value: &[u8],
    writer_for_id: impl FnOnce(u32) -> Result<Schema>,
    reader: Option<&Schema>,
) -> Result<T> {
    let (id, datum) = split_frame(record_value)?;
    let writer = writer_for_id(id.get())?;
    let value = decode_datum(datum, &writer, reader)?;
    apache_avro::from_value(&value).map_err(|e| Error::Decode {
        reason: e.to_string(),
    })
}
