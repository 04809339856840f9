CREATE TABLE tickets (
    id              uuid        PRIMARY KEY,
    -- Idempotency: a retried create with the same request_id finds this row instead of adding one.
    request_id      text        NOT NULL UNIQUE,
    customer_id     text        NOT NULL,
    channel         text        NOT NULL,
    category        text        NOT NULL,
    subject         text        NOT NULL,
    description     text        NOT NULL,
    priority        text        NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    status          text        NOT NULL CHECK (status IN ('new', 'open', 'pending', 'on_hold', 'resolved', 'closed')),
    language        text        NOT NULL,
    customer_tier   text        NOT NULL,
    wallet_context  jsonb       NOT NULL,
    version         bigint      NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE INDEX tickets_customer ON tickets (customer_id, created_at DESC);
