#!/usr/bin/env bash
# Gives the local test services TLS, idempotently, and prints the environment to export
# (OUTBOX_TEST_TLS_DIR). What it does, each step only when not already done:
#   - a test CA (openssl), a server certificate for localhost/127.0.0.1, a client certificate
#     (CN outbox_tls_cert), a second, untrusted CA, and a random test password, all in
#     $OUTBOX_CI_CACHE/tls (default ~/.cache/outbox-ci/tls);
#   - PostgreSQL: the certificate as ssl_cert_file/ssl_key_file/ssl_ca_file (ALTER SYSTEM +
#     reload, no restart) and pg_hba lines for two test roles only: outbox_tls (password, TLS
#     only) and outbox_tls_cert (client certificate, TLS only), both with REPLICATION (WAL mode
#     streams a slot as them). Every other connection is
#     unchanged: plaintext local connections keep working;
#   - MariaDB: the certificate in /etc/mysql/conf.d/90-outbox-tls.cnf (restart only when the
#     server has no TLS yet or its certificate changed) and the same two test users with
#     REQUIRE SSL / REQUIRE X509. `require_secure_transport` stays off.
# Runs as root (it writes server configuration); prints to stderr what it changed.
set -euo pipefail

cache="${OUTBOX_CI_CACHE:-$HOME/.cache/outbox-ci}"
dir="$cache/tls"
mkdir -p "$dir"
chmod 700 "$dir"
say() { echo "tls: $*" >&2; }

# ---------------------------------------------------------------- certificates
valid() { [ -s "$1" ] && openssl x509 -in "$1" -noout -checkend 604800 >/dev/null 2>&1; }
new_ca() { # name subject
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/$1.key" 2>/dev/null
  openssl req -x509 -new -key "$dir/$1.key" -sha256 -days 825 -subj "$2" -out "$dir/$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}
leaf() { # name subject extensions...
  local name=$1 subject=$2 ext
  ext=$(mktemp)
  shift 2
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" "$@" > "$ext"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/$name.key" 2>/dev/null
  openssl req -new -key "$dir/$name.key" -subj "$subject" -out "$dir/$name.csr"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 825 -sha256 -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$ext" "$dir/$name.csr"
}
if ! valid "$dir/ca.crt"; then
  say "creating the test CA"
  new_ca ca "/CN=outbox CI test CA"
  rm -f "$dir/server.crt" "$dir/client.crt"
fi
if ! valid "$dir/server.crt"; then
  say "creating the server certificate (localhost, 127.0.0.1)"
  leaf server "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1" "extendedKeyUsage=serverAuth"
fi
if ! valid "$dir/client.crt"; then
  say "creating the client certificate (CN outbox_tls_cert)"
  leaf client "/CN=outbox_tls_cert" "extendedKeyUsage=clientAuth"
fi
valid "$dir/other-ca.crt" || new_ca other-ca "/CN=not the outbox CI test CA"
[ -s "$dir/password" ] || openssl rand -hex 16 > "$dir/password"
chmod 600 "$dir"/*.key "$dir/password"
password=$(cat "$dir/password")

# ---------------------------------------------------------------- PostgreSQL
psql_root() { psql -h localhost -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
if pg_isready -h localhost -p 5432 -q 2>/dev/null && id postgres >/dev/null 2>&1; then
  pg_dir="$(getent passwd postgres | cut -d: -f6)/outbox-tls"
  install -d -o postgres -g postgres -m 700 "$pg_dir"
  install -o postgres -g postgres -m 644 "$dir/server.crt" "$pg_dir/server.crt"
  install -o postgres -g postgres -m 644 "$dir/ca.crt" "$pg_dir/ca.crt"
  install -o postgres -g postgres -m 600 "$dir/server.key" "$pg_dir/server.key"
  hba=$(psql_root -c "SHOW hba_file" postgres)
  if ! grep -q '^# outbox-ci tls begin' "$hba"; then
    say "adding TLS-only pg_hba lines for the roles outbox_tls and outbox_tls_cert"
    tmp=$(mktemp)
    {
      echo "# outbox-ci tls begin (test roles only; every other connection is unchanged)"
      echo "hostnossl all outbox_tls,outbox_tls_cert 127.0.0.1/32 reject"
      echo "hostssl   all outbox_tls                 127.0.0.1/32 scram-sha-256"
      echo "hostssl   all outbox_tls_cert            127.0.0.1/32 cert"
      echo "# outbox-ci tls end"
      cat "$hba"
    } > "$tmp"
    cat "$tmp" > "$hba"
    rm -f "$tmp"
  fi
  psql_root postgres >/dev/null <<SQL
ALTER SYSTEM SET ssl = on;
ALTER SYSTEM SET ssl_cert_file = '$pg_dir/server.crt';
ALTER SYSTEM SET ssl_key_file = '$pg_dir/server.key';
ALTER SYSTEM SET ssl_ca_file = '$pg_dir/ca.crt';
SELECT pg_reload_conf();
SQL
  psql_root test <<SQL
SET password_encryption = 'scram-sha-256';
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'outbox_tls') THEN CREATE ROLE outbox_tls LOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'outbox_tls_cert') THEN CREATE ROLE outbox_tls_cert LOGIN; END IF;
END \$\$;
ALTER ROLE outbox_tls PASSWORD '$password';
-- WAL mode over TLS streams a logical slot as these roles.
ALTER ROLE outbox_tls REPLICATION;
ALTER ROLE outbox_tls_cert REPLICATION;
GRANT CREATE, USAGE ON SCHEMA public TO outbox_tls, outbox_tls_cert;
SQL
  sleep 1 # the reload is asynchronous
  [ "$(psql_root -c 'SHOW ssl_cert_file' postgres)" = "$pg_dir/server.crt" ] || { say "PostgreSQL did not take the certificate"; exit 1; }
else
  say "PostgreSQL is not reachable: not configured"
fi

# ---------------------------------------------------------------- MariaDB
client=$(command -v mariadb || command -v mysql || true)
maria() { "$client" -h 127.0.0.1 -u root -N -B "$@"; }
maria_up() { (mariadb-admin -h 127.0.0.1 -u root ping || mysqladmin -h 127.0.0.1 -u root ping) >/dev/null 2>&1; }
if maria_up && id mysql >/dev/null 2>&1; then
  my_dir=/etc/mysql/outbox-tls
  install -d -o mysql -g mysql -m 750 "$my_dir"
  changed=0
  for f in server.crt server.key ca.crt; do
    cmp -s "$dir/$f" "$my_dir/$f" || changed=1
  done
  install -o mysql -g mysql -m 644 "$dir/server.crt" "$my_dir/server.crt"
  install -o mysql -g mysql -m 644 "$dir/ca.crt" "$my_dir/ca.crt"
  install -o mysql -g mysql -m 600 "$dir/server.key" "$my_dir/server.key"
  mkdir -p /etc/mysql/conf.d
  conf=/etc/mysql/conf.d/90-outbox-tls.cnf
  printf '%s\n' "# Written by .ci/tls.sh: TLS for the tests (plaintext stays allowed)." "[mariadbd]" \
    "ssl_ca = $my_dir/ca.crt" "ssl_cert = $my_dir/server.crt" "ssl_key = $my_dir/server.key" > "$conf.new"
  cmp -s "$conf.new" "$conf" || changed=1
  mv "$conf.new" "$conf"
  grep -qsE '^!includedir /etc/mysql/conf.d/?$' /etc/mysql/my.cnf || { echo '!includedir /etc/mysql/conf.d/' >> /etc/mysql/my.cnf; changed=1; }
  if [ "$(maria -e "SELECT @@have_ssl")" != "YES" ] || [ "$changed" = 1 ]; then
    say "restarting MariaDB to load its certificate"
    (mariadb-admin -h 127.0.0.1 -u root shutdown || mysqladmin -h 127.0.0.1 -u root shutdown) >/dev/null 2>&1 || true
    # Wait for the process itself to exit, not only the port: the start below is a no-op
    # while the old server is still flushing.
    for _ in $(seq 1 120); do pidof mariadbd mysqld >/dev/null || break; sleep 0.5; done
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    for _ in $(seq 1 60); do maria_up && break; sleep 0.5; done
  fi
  [ "$(maria -e "SELECT @@have_ssl")" = "YES" ] || { say "MariaDB has no TLS; see its error log"; exit 1; }
  maria <<SQL
CREATE DATABASE IF NOT EXISTS test;
CREATE USER IF NOT EXISTS 'outbox_tls'@'%' IDENTIFIED BY '$password';
ALTER USER 'outbox_tls'@'%' IDENTIFIED BY '$password' REQUIRE SSL;
CREATE USER IF NOT EXISTS 'outbox_tls_cert'@'%';
ALTER USER 'outbox_tls_cert'@'%' REQUIRE SUBJECT '/CN=outbox_tls_cert';
GRANT ALL ON test.* TO 'outbox_tls'@'%', 'outbox_tls_cert'@'%';
SQL
else
  say "MariaDB is not reachable: not configured"
fi

echo "export OUTBOX_TEST_TLS_DIR=$dir"
