CREATE TABLE IF NOT EXISTS "outbox_captures" (
  table_name TEXT NOT NULL PRIMARY KEY,
  topic TEXT NOT NULL,
  subject TEXT NOT NULL,
  schema_id BIGINT NOT NULL,
  spec TEXT NOT NULL,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
INSERT INTO "outbox_migrations" (version, description) VALUES (1, 'create the outbox, schema registry and relay tables'), (2, 'soft delete of schema versions'), (3, 'record of the tables captured with triggers') ON CONFLICT (version) DO NOTHING;
