CREATE TABLE IF NOT EXISTS "outbox_wal_slot" (
  slot_name TEXT NOT NULL PRIMARY KEY,
  publication TEXT NOT NULL,
  message_prefix TEXT NOT NULL,
  created_lsn PG_LSN NOT NULL,
  system_identifier TEXT NOT NULL,
  database_oid BIGINT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO "outbox_migrations" (version, description) VALUES (1, 'create the outbox, schema registry and relay tables'), (2, 'soft delete of schema versions'), (3, 'record of the tables captured with triggers'), (4, 'identity of the WAL mode replication slot') ON CONFLICT (version) DO NOTHING;
