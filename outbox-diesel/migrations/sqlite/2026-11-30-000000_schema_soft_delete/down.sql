ALTER TABLE "outbox_schemas" DROP COLUMN deleted;
