DROP TABLE IF EXISTS "outbox_liberations";
