CREATE TABLE IF NOT EXISTS "outbox_liberations" (
  table_name TEXT NOT NULL,
  mode VARCHAR(255) NOT NULL,
  last_key TEXT NOT NULL,
  rows_done BIGINT NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (table_name, mode)
);
INSERT INTO "outbox_migrations" (version, description) VALUES (1, 'create the outbox, schema registry and relay tables'), (2, 'soft delete of schema versions'), (3, 'record of the tables captured with triggers'), (4, 'identity of the WAL mode replication slot'), (5, 'checkpoints of query liberation') ON CONFLICT (version) DO NOTHING;
