-- Idempotency (ADR 0018): what the registering request asked for, so a retry with the same request_id but
-- another body is refused instead of answered with an endpoint it did not ask for. Empty for endpoints
-- registered before this column.
ALTER TABLE webhook_endpoints ADD COLUMN request_fingerprint text NOT NULL DEFAULT '';
