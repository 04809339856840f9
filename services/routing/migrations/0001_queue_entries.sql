CREATE TABLE queue_entries (
    ticket_id          uuid        PRIMARY KEY,
    queue              text        NOT NULL,
    priority           text        NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    state              text        NOT NULL CHECK (state IN ('waiting')),
    ticket_version     bigint      NOT NULL,
    ticket_created_at  timestamptz NOT NULL,
    enqueued_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX queue_entries_waiting ON queue_entries (queue, ticket_created_at) WHERE state = 'waiting';
