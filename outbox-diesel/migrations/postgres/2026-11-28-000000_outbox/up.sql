CREATE TABLE IF NOT EXISTS "outbox_migrations" (version BIGINT PRIMARY KEY, description VARCHAR(255) NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS "outbox_events" (
  txid XID8 NOT NULL DEFAULT pg_current_xact_id(),
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id UUID NOT NULL UNIQUE,
  topic TEXT NOT NULL,
  event_key BYTEA NULL,
  event_type TEXT NOT NULL,
  schema_id INTEGER NULL,
  content_type TEXT NOT NULL,
  payload BYTEA NOT NULL,
  headers TEXT NOT NULL DEFAULT '[]',
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS "outbox_schema_ids" (
  id INTEGER NOT NULL PRIMARY KEY,
  fingerprint CHAR(64) NOT NULL UNIQUE,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS "outbox_schemas" (
  id INTEGER NOT NULL,
  subject TEXT NOT NULL,
  version INTEGER NOT NULL,
  schema_json TEXT NOT NULL,
  fingerprint CHAR(64) NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (subject, version),
  UNIQUE (subject, fingerprint)
);
CREATE TABLE IF NOT EXISTS "outbox_subject_config" (
  subject TEXT NOT NULL PRIMARY KEY,
  compatibility VARCHAR(32) NOT NULL
);
CREATE TABLE IF NOT EXISTS "outbox_attempts" (
  event_id UUID NOT NULL PRIMARY KEY,
  attempts INTEGER NOT NULL,
  last_error TEXT NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS "outbox_dead_letters" (
  id BIGINT NOT NULL PRIMARY KEY,
  event_id UUID NOT NULL UNIQUE,
  topic TEXT NOT NULL,
  event_key BYTEA NULL,
  event_type TEXT NOT NULL,
  schema_id INTEGER NULL,
  content_type TEXT NOT NULL,
  payload BYTEA NOT NULL,
  headers TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL,
  attempts INTEGER NOT NULL,
  error TEXT NOT NULL,
  dead_lettered_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS "outbox_leases" (
  name TEXT NOT NULL PRIMARY KEY,
  holder TEXT NOT NULL,
  fencing_token BIGINT NOT NULL,
  expires_at TIMESTAMPTZ NOT NULL
);
