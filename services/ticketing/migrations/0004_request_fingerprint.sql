-- Idempotency: what the creating request asked for, so a retry with the same request_id but another body is
-- refused instead of answered with a ticket it did not ask for. Empty for tickets opened before this column.
ALTER TABLE tickets ADD COLUMN request_fingerprint text NOT NULL DEFAULT '';
