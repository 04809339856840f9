-- Inbox order and read state, per-user preferences, what notify learns about tickets from events,
-- webhook endpoints and durable deliveries with their attempts.

-- Commit order is approximated by this sequence; resume replays a short overlap (ADR 0021).
ALTER TABLE notifications ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE notifications ADD COLUMN data jsonb NOT NULL DEFAULT '{}';
ALTER TABLE notifications ADD COLUMN security boolean NOT NULL DEFAULT false;
ALTER TABLE notifications ADD COLUMN disowned_at timestamptz;
CREATE UNIQUE INDEX notifications_seq ON notifications (seq);
CREATE INDEX notifications_replay ON notifications (user_id, seq);

-- One row per reader and notification: an audience's notification is read separately by each of its readers.
CREATE TABLE notification_reads (
    notification_id  uuid        NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    reader_id        text        NOT NULL,
    read_at          timestamptz NOT NULL,
    PRIMARY KEY (notification_id, reader_id)
);

CREATE TABLE preferences (
    user_id      text        PRIMARY KEY,
    locale       text        NOT NULL DEFAULT 'en',
    email        text        NOT NULL DEFAULT '',
    channels     text[]      NOT NULL DEFAULT '{in_app,email}',
    quiet_start  time,
    quiet_end    time,
    time_zone    text        NOT NULL DEFAULT 'UTC',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);

-- Learned from ticketing's events only: who the customer is, who holds the ticket, their language.
CREATE TABLE tickets (
    ticket_id    text   PRIMARY KEY,
    customer_id  text   NOT NULL,
    assignee_id  text   NOT NULL DEFAULT '',
    language     text   NOT NULL DEFAULT '',
    subject      text   NOT NULL DEFAULT '',
    category     text   NOT NULL DEFAULT '',
    version      bigint NOT NULL DEFAULT 0
);

CREATE TABLE webhook_endpoints (
    id           uuid        PRIMARY KEY,
    request_id   text        NOT NULL UNIQUE,
    subscriber   text        NOT NULL,
    url          text        NOT NULL,
    secret       text        NOT NULL,
    event_types  text[]      NOT NULL,
    enabled      boolean     NOT NULL DEFAULT true,
    description  text        NOT NULL DEFAULT '',
    version      bigint      NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE deliveries (
    id                uuid        PRIMARY KEY,
    channel           text        NOT NULL CHECK (channel IN ('webhook', 'email')),
    -- The endpoint id or the email address; deliveries to one target share its concurrency limit.
    target            text        NOT NULL,
    endpoint_id       uuid        REFERENCES webhook_endpoints (id) ON DELETE SET NULL,
    event_id          text        NOT NULL,
    event_type        text        NOT NULL,
    notification_id   uuid,
    -- Webhook: the JSON body as sent. Email: {"to", "subject", "body"}.
    payload           bytea       NOT NULL,
    status            text        NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'delivering', 'delivered', 'dead_lettered')),
    attempts          integer     NOT NULL DEFAULT 0,
    -- attempts made before the last replay: a replay gives a fresh budget and keeps the history.
    attempts_before_replay integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL,
    lease_until       timestamptz,
    last_error        text        NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    delivered_at      timestamptz,
    -- Recorded once: the same event never makes a second delivery to the same target.
    UNIQUE (channel, target, event_id)
);

-- The worker's claim scans only what is due or whose lease ran out.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_leased ON deliveries (lease_until) WHERE status = 'delivering';
CREATE INDEX deliveries_listing ON deliveries (created_at DESC, id DESC);

CREATE TABLE delivery_attempts (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  uuid        NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    number       integer     NOT NULL,
    started_at   timestamptz NOT NULL,
    duration_ms  double precision NOT NULL,
    status_code  integer     NOT NULL DEFAULT 0,
    error        text        NOT NULL DEFAULT ''
);

CREATE INDEX delivery_attempts_of ON delivery_attempts (delivery_id, id);

-- Wake the delivery workers in the committing transaction.
CREATE FUNCTION deliveries_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_deliveries', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER deliveries_changed AFTER INSERT OR UPDATE OF status, next_attempt_at ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION deliveries_notify();
