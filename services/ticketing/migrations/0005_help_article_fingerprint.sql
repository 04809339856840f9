-- Idempotency: what the creating request asked for, so a retry with the same request_id but another body is
-- refused instead of answered with an article it did not ask for. Empty for articles created before this.
ALTER TABLE help_articles ADD COLUMN request_fingerprint text NOT NULL DEFAULT '';
