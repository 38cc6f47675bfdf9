#!/usr/bin/env bash
# Runs the README's quickstart command and every example, against the local databases and
# the test broker (KAFKA_BOOTSTRAP_SERVERS), and fails if any does.
set -euo pipefail
cd "$(dirname "$0")/.."

pg="${OUTBOX_TEST_PG_URL:-postgres://postgres@localhost:5432/test}"
maria="${OUTBOX_TEST_MYSQL_URL:-mysql://root@localhost:3306/test}"
expected="summary: published 3, rolled back 1, refused 1, consumed 3"

check_summary() { # EXPECTED COMMAND...: the command's last line must be EXPECTED
  local want=$1 out
  shift
  out=$("$@")
  echo "$out" | tail -n 1
  [ "$(echo "$out" | tail -n 1)" = "$want" ] || { echo "$out"; echo "the summary is wrong" >&2; exit 1; }
}
check_quickstart() { check_summary "$expected" "$@"; }

echo "-- quickstart, as the README says (SQLite + in-process Kafka)"
check_quickstart env -u DATABASE_URL -u KAFKA_BOOTSTRAP_SERVERS cargo run -q -p quickstart
echo "-- quickstart on PostgreSQL + the test broker"
check_quickstart env DATABASE_URL="$pg" KAFKA_BOOTSTRAP_SERVERS="$KAFKA_BOOTSTRAP_SERVERS" cargo run -q -p quickstart
echo "-- quickstart on MariaDB + the test broker"
check_quickstart env DATABASE_URL="$maria" KAFKA_BOOTSTRAP_SERVERS="$KAFKA_BOOTSTRAP_SERVERS" cargo run -q -p quickstart

echo "-- schema-evolution"
cargo run -q -p schema-evolution

drain_with_relay() { # URL PREFIX: run the outbox-relay binary until the outbox is empty
  local url=$1 prefix=$2 relay=target/debug/outbox-relay pid
  cargo build -q -p outbox-relay
  "$relay" --database-url "$url" --table-prefix "$prefix" --bootstrap-servers "$KAFKA_BOOTSTRAP_SERVERS" \
    --http-listen "" --registry-listen "" run &
  pid=$!
  for _ in $(seq 1 300); do
    if "$relay" --database-url "$url" --table-prefix "$prefix" status | grep -q "backlog:      0 "; then
      break
    fi
    sleep 0.2
  done
  "$relay" --database-url "$url" --table-prefix "$prefix" status
  kill -TERM "$pid"
  wait "$pid" || { echo "outbox-relay did not exit 0" >&2; exit 1; }
  "$relay" --database-url "$url" --table-prefix "$prefix" status | grep -q "backlog:      0 " \
    || { echo "the relay left events behind" >&2; exit 1; }
}

expected_liberate="summary: captured 5, consumed 5, rolled back 1, refused DDL 1"
check_liberate() { check_summary "$expected_liberate" "$@"; }
echo "-- liberate-legacy (SQLite + in-process Kafka)"
check_liberate env -u DATABASE_URL -u KAFKA_BOOTSTRAP_SERVERS cargo run -q -p liberate-legacy
echo "-- liberate-legacy on PostgreSQL + the test broker"
check_liberate env DATABASE_URL="$pg" KAFKA_BOOTSTRAP_SERVERS="$KAFKA_BOOTSTRAP_SERVERS" cargo run -q -p liberate-legacy
echo "-- liberate-legacy on MariaDB + the test broker"
check_liberate env DATABASE_URL="$maria" KAFKA_BOOTSTRAP_SERVERS="$KAFKA_BOOTSTRAP_SERVERS" cargo run -q -p liberate-legacy

echo "-- orders-postgres, drained by the outbox-relay binary"
DATABASE_URL="$pg" cargo run -q -p orders-postgres
drain_with_relay "$pg" orders_svc
echo "-- orders-diesel, drained by the outbox-relay binary"
DATABASE_URL="$pg" cargo run -q -p orders-diesel
drain_with_relay "$pg" orders_diesel
echo "-- orders-diesel-async (diesel-async on a bb8 pool), drained by the outbox-relay binary"
out=$(DATABASE_URL="$pg" cargo run -q -p orders-diesel-async)
echo "$out"
run=$(echo "$out" | sed -n 's/^run: //p')
committed=$(echo "$out" | sed -n 's/^published: //p')
drain_with_relay "$pg" orders_diesel_async
echo "-- orders-diesel-async: this run's committed events on the topic, read by confluent-kafka"
"$OUTBOX_PYTHON" - "$KAFKA_BOOTSTRAP_SERVERS" order-status-async "$run" "$committed" <<'PY'
import sys, time, uuid
from confluent_kafka import Consumer
bootstrap, topic, run, expected = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "examples-" + uuid.uuid4().hex,
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
consumer.subscribe([topic])
keys, ids, deadline, idle = [], set(), time.time() + 60, 0
while time.time() < deadline and idle < 3:
    msg = consumer.poll(1.0)
    if msg is None:
        idle = idle + 1 if len(keys) >= expected else 0
        continue
    if msg.error():
        raise SystemExit(f"consume error: {msg.error()}")
    key = msg.key().decode()
    if run in key:
        keys.append(key)
        ids.add(dict(msg.headers() or [])["ce_id"].decode())
consumer.close()
print(f"{len(keys)} records of run {run} on {topic}, {len(ids)} distinct ce_id")
if len(keys) != expected or len(ids) != expected:
    raise SystemExit(f"expected {expected} records, each once")
if any(k.endswith("-rolled-back") for k in keys):
    raise SystemExit("the rolled-back event reached the topic")
PY
echo "-- inbox: an idempotent consumer, duplicates skipped (in-process Kafka, then the test broker)"
env -u KAFKA_BOOTSTRAP_SERVERS cargo run -q -p inbox | tail -n 1 | grep -q "inbox example: ok" || { echo "inbox example failed" >&2; exit 1; }
KAFKA_BOOTSTRAP_SERVERS="$KAFKA_BOOTSTRAP_SERVERS" cargo run -q -p inbox | tail -n 1 | grep -q "inbox example: ok" || { echo "inbox example failed" >&2; exit 1; }
echo "examples: ok"
