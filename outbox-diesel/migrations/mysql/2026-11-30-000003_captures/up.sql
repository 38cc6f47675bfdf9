CREATE TABLE IF NOT EXISTS `outbox_captures` (
  table_name VARCHAR(255) NOT NULL PRIMARY KEY,
  topic VARCHAR(255) NOT NULL,
  subject VARCHAR(255) NOT NULL,
  schema_id BIGINT NOT NULL,
  spec LONGTEXT NOT NULL,
  created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB;
INSERT IGNORE INTO `outbox_migrations` (version, description) VALUES (1, 'create the outbox, schema registry and relay tables'), (2, 'soft delete of schema versions'), (3, 'record of the tables captured with triggers');
