DROP TABLE IF EXISTS "outbox_migrations";
DROP TABLE IF EXISTS "outbox_leases";
DROP TABLE IF EXISTS "outbox_dead_letters";
DROP TABLE IF EXISTS "outbox_attempts";
DROP TABLE IF EXISTS "outbox_subject_config";
DROP TABLE IF EXISTS "outbox_schema_ids";
DROP TABLE IF EXISTS "outbox_schemas";
DROP TABLE IF EXISTS "outbox_events";
