-- Idempotency of every creating call (ADR 0018): what the creating request asked for, so a retry with the
-- same request_id but another body is refused instead of answered with an object it did not ask for.
-- Empty for objects created before this column: they replay for any body, as they did.
ALTER TABLE routing_rules ADD COLUMN request_fingerprint text NOT NULL DEFAULT '';
ALTER TABLE sla_policies ADD COLUMN request_fingerprint text NOT NULL DEFAULT '';
ALTER TABLE sla_calendars ADD COLUMN request_fingerprint text NOT NULL DEFAULT '';

-- Agents were idempotent on their id alone; the request_id now names the call that created one, so the same
-- Idempotency-Key with another body (another id, another profile) is refused too. NULL before this column.
ALTER TABLE agents ADD COLUMN request_id text UNIQUE;
ALTER TABLE agents ADD COLUMN request_fingerprint text NOT NULL DEFAULT '';
