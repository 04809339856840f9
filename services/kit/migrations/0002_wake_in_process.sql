-- The relay is woken by its own process after a commit (services/kit/wake.py, ADR 0060): a NOTIFY made every
-- committing transaction that wrote events take one database-wide lock through its WAL flush.
DROP TRIGGER outbox_inserted ON outbox;
DROP FUNCTION outbox_notify();
