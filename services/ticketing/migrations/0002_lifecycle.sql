-- The ticket lifecycle: assignment, flags, resolution, CSAT; the conversation; the audit timeline;
-- editable priority rules.

ALTER TABLE tickets
    ADD COLUMN assignee_id     text        NOT NULL DEFAULT '',
    ADD COLUMN flags           text[]      NOT NULL DEFAULT '{}',
    ADD COLUMN resolution_note text        NOT NULL DEFAULT '',
    ADD COLUMN resolved_at     timestamptz,
    ADD COLUMN csat_score      smallint    CHECK (csat_score BETWEEN 1 AND 5),
    ADD COLUMN csat_comment    text,
    ADD COLUMN csat_at         timestamptz;

-- Keyset pagination of lists, newest first, for each filter an agent console uses.
CREATE INDEX tickets_recent ON tickets (created_at DESC, id DESC);
CREATE INDEX tickets_assignee ON tickets (assignee_id, created_at DESC, id DESC) WHERE assignee_id <> '';
CREATE INDEX tickets_status ON tickets (status, created_at DESC, id DESC);

CREATE TABLE messages (
    seq          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- stable order and paging
    id           uuid        NOT NULL UNIQUE,
    ticket_id    uuid        NOT NULL REFERENCES tickets (id),
    request_id   text        NOT NULL,
    author_type  text        NOT NULL CHECK (author_type IN ('customer', 'agent', 'supervisor', 'admin', 'system')),
    author_id    text        NOT NULL,
    visibility   text        NOT NULL CHECK (visibility IN ('public', 'internal')),
    body         text        NOT NULL,
    attachments  jsonb       NOT NULL DEFAULT '[]',
    redactions   text[]      NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL,
    UNIQUE (ticket_id, request_id)
);

CREATE INDEX messages_ticket ON messages (ticket_id, seq);

CREATE TABLE timeline (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id   uuid        NOT NULL REFERENCES tickets (id),
    version     bigint      NOT NULL,
    actor_type  text        NOT NULL,
    actor_id    text        NOT NULL,
    action      text        NOT NULL,
    details     jsonb       NOT NULL DEFAULT '{}',
    trace_id    text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    UNIQUE (ticket_id, version)  -- one change per version, never two
);

-- An audit that can be edited is not an audit.
CREATE FUNCTION timeline_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the timeline is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER timeline_no_update BEFORE UPDATE OR DELETE ON timeline
    FOR EACH ROW EXECUTE FUNCTION timeline_append_only();

CREATE TABLE priority_rules (
    category    text        PRIMARY KEY,
    priority    text        NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL DEFAULT 'default'
);

INSERT INTO priority_rules (category, priority) VALUES
    ('payment_failed', 'urgent'),
    ('account_frozen', 'urgent'),
    ('suspicious_activity', 'urgent'),
    ('account_locked', 'high'),
    ('bank_card', 'high'),
    ('password_reset', 'normal'),
    ('transaction_query', 'normal'),
    ('complaint', 'normal'),
    ('beta_access', 'low'),
    ('other', 'normal');
