CREATE TABLE notifications (
    id               uuid        PRIMARY KEY,
    user_id          text        NOT NULL,
    channel          text        NOT NULL CHECK (channel IN ('in_app', 'webhook', 'email')),
    kind             text        NOT NULL,
    title            text        NOT NULL,
    body             text        NOT NULL,
    ticket_id        text        NOT NULL,
    source_event_id  text        NOT NULL,
    created_at       timestamptz NOT NULL,
    -- One notification per event, kind and person, however often the event arrives.
    UNIQUE (source_event_id, kind, user_id)
);

CREATE INDEX notifications_inbox ON notifications (user_id, created_at DESC, id DESC);
