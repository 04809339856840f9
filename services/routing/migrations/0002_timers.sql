-- Durable timers: offer deadlines, routing step relaxations, SLA warnings and breaches.
CREATE TABLE timers (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text        NOT NULL,
    key           text        NOT NULL,
    due_at        timestamptz NOT NULL,
    payload       jsonb       NOT NULL DEFAULT '{}',
    armed_at      timestamptz NOT NULL DEFAULT now(),
    fired_at      timestamptz,
    lateness      interval,               -- fired_at - due_at, by the database clock
    cancelled_at  timestamptz,
    attempts      integer     NOT NULL DEFAULT 0,
    error         text,
    -- One live timer per (kind, key); arming it again moves it.
    UNIQUE (kind, key)
);

-- The scheduler only ever looks at the earliest armed timers.
CREATE INDEX timers_due ON timers (due_at) WHERE fired_at IS NULL AND cancelled_at IS NULL;

-- Wake the scheduler when a timer is armed earlier than the one it sleeps for.
CREATE FUNCTION timers_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_timers', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER timers_armed AFTER INSERT OR UPDATE OF due_at ON timers
    FOR EACH STATEMENT EXECUTE FUNCTION timers_notify();
