ALTER TABLE `outbox_schemas` ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
INSERT IGNORE INTO `outbox_migrations` (version, description) VALUES (1, 'create the outbox, schema registry and relay tables'), (2, 'soft delete of schema versions');
