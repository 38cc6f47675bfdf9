"""Reads a topic with the confluent-kafka client (a consumer we did not write) and decodes
each value from the Confluent wire format, either with confluent-kafka's own
SchemaRegistryClient + AvroDeserializer against a registry URL (our relay's REST API), or
with fastavro and a schema file.

Usage: consume_confluent.py BOOTSTRAP TOPIC EXPECTED (SCHEMA_FILE | http://REGISTRY)
Prints one JSON line per record: key, ce_id, schema_id, decoded value.
"""
import io
import json
import struct
import sys
import time

import fastavro
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

bootstrap, topic, expected, source = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if source.startswith("http"):
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    deserializer = AvroDeserializer(SchemaRegistryClient({"url": source}))

    def decode(value):
        return deserializer(value, SerializationContext(topic, MessageField.VALUE))
else:
    with open(source) as f:
        schema = fastavro.parse_schema(json.load(f))

    def decode(value):
        return fastavro.schemaless_reader(io.BytesIO(value[5:]), schema)

consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": "outbox-python-check",
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
})
partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
seen = 0
deadline = time.time() + 60
while seen < expected and time.time() < deadline:
    msg = consumer.poll(0.5)
    if msg is None:
        continue
    if msg.error():
        raise SystemExit(f"consume error: {msg.error()}")
    value = msg.value()
    if value[0] != 0:
        raise SystemExit(f"bad magic byte {value[0]}")
    (schema_id,) = struct.unpack(">I", value[1:5])
    record = decode(value)
    headers = {k: v.decode() for k, v in (msg.headers() or [])}
    print(json.dumps({
        "key": msg.key().decode() if msg.key() is not None else None,
        "ce_id": headers.get("ce_id"),
        "ce_type": headers.get("ce_type"),
        "schema_id": schema_id,
        "value": record,
    }), flush=True)
    seen += 1
consumer.close()
