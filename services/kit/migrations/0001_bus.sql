-- The bus tables every service schema carries: outbox, inbox, dead letters.
-- Runs with search_path set to the service's schema.

CREATE TABLE outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id      uuid        NOT NULL UNIQUE,
    event_type    text        NOT NULL,  -- also the NATS subject
    source        text        NOT NULL,
    subject       text        NOT NULL,  -- ce-subject: the entity id, e.g. the ticket id
    event_time    timestamptz NOT NULL,
    payload       bytea       NOT NULL,
    trace         jsonb       NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);

-- The relay only ever scans what is still to publish.
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Wake the relay in the committing transaction; one notification per statement is enough.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_inserted AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

CREATE TABLE inbox (
    consumer     text        NOT NULL,
    event_id     text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE dead_letters (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer      text        NOT NULL,
    stream        text        NOT NULL,
    stream_seq    bigint      NOT NULL,
    nats_subject  text        NOT NULL,
    event_id      text,
    headers       jsonb       NOT NULL,
    payload       bytea       NOT NULL,
    error         text        NOT NULL,
    deliveries    integer     NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    replayed_at   timestamptz,
    UNIQUE (consumer, stream, stream_seq)
);
