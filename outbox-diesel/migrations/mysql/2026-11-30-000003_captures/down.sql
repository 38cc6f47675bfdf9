DROP TABLE IF EXISTS `outbox_captures`;
