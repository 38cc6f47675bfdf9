CREATE TABLE IF NOT EXISTS "outbox_migrations" (version BIGINT PRIMARY KEY, description VARCHAR(255) NOT NULL, applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')));
CREATE TABLE IF NOT EXISTS "outbox_events" (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id TEXT NOT NULL UNIQUE,
  topic TEXT NOT NULL,
  event_key BLOB NULL,
  event_type TEXT NOT NULL,
  schema_id INTEGER NULL,
  content_type TEXT NOT NULL,
  payload BLOB NOT NULL,
  headers TEXT NOT NULL DEFAULT '[]',
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS "outbox_schema_ids" (
  id INTEGER NOT NULL PRIMARY KEY,
  fingerprint CHAR(64) NOT NULL UNIQUE,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS "outbox_schemas" (
  id INTEGER NOT NULL,
  subject TEXT NOT NULL,
  version INTEGER NOT NULL,
  schema_json TEXT NOT NULL,
  fingerprint CHAR(64) NOT NULL,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  PRIMARY KEY (subject, version),
  UNIQUE (subject, fingerprint)
);
CREATE TABLE IF NOT EXISTS "outbox_subject_config" (
  subject TEXT NOT NULL PRIMARY KEY,
  compatibility VARCHAR(32) NOT NULL
);
CREATE TABLE IF NOT EXISTS "outbox_attempts" (
  event_id TEXT NOT NULL PRIMARY KEY,
  attempts INTEGER NOT NULL,
  last_error TEXT NOT NULL,
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS "outbox_dead_letters" (
  id BIGINT NOT NULL PRIMARY KEY,
  event_id TEXT NOT NULL UNIQUE,
  topic TEXT NOT NULL,
  event_key BLOB NULL,
  event_type TEXT NOT NULL,
  schema_id INTEGER NULL,
  content_type TEXT NOT NULL,
  payload BLOB NOT NULL,
  headers TEXT NOT NULL,
  created_at TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  error TEXT NOT NULL,
  dead_lettered_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS "outbox_leases" (
  name TEXT NOT NULL PRIMARY KEY,
  holder TEXT NOT NULL,
  fencing_token BIGINT NOT NULL,
  expires_at TEXT NOT NULL
);
