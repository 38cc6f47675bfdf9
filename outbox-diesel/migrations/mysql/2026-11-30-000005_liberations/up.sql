CREATE TABLE IF NOT EXISTS `outbox_liberations` (
  table_name VARCHAR(255) NOT NULL,
  mode VARCHAR(255) NOT NULL,
  last_key LONGTEXT NOT NULL,
  rows_done BIGINT NOT NULL,
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (table_name, mode)
) ENGINE=InnoDB;
INSERT IGNORE INTO `outbox_migrations` (version, description) VALUES (1, 'create the outbox, schema registry and relay tables'), (2, 'soft delete of schema versions'), (3, 'record of the tables captured with triggers'), (4, 'identity of the WAL mode replication slot'), (5, 'checkpoints of query liberation');
