DROP TABLE IF EXISTS "outbox_wal_slot";
