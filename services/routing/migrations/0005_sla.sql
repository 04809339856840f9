-- Service level agreements: business calendars, policies, each ticket's clocks.
-- Rules of the clocks: services/routing/sla/domain.py. Warnings and breaches are durable timers (timers table,
-- kinds sla.warning / sla.breach, keys '<ticket>:<metric>:<cycle>[:<percent>]').

-- Business-hours calendars. Empty calendar_id on a policy means calendar time (24/7).
CREATE TABLE sla_calendars (
    id          uuid        PRIMARY KEY,
    request_id  text        UNIQUE,                   -- CreateCalendar is idempotent on it
    name        text        NOT NULL,
    time_zone   text        NOT NULL,                 -- IANA zone; opening hours are its wall-clock times
    hours       jsonb       NOT NULL,                 -- [{"weekday": 1, "open": "09:00", "close": "18:00"}, ...]
    holidays    date[]      NOT NULL DEFAULT '{}',    -- local dates, closed all day
    version     bigint      NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Policies: the first matching one by position (then age) sets a ticket's targets. Empty match lists match
-- anything. A NULL target means the policy sets none for that metric (no clock of that kind).
CREATE TABLE sla_policies (
    id                 uuid        PRIMARY KEY,
    request_id         text        UNIQUE,
    name               text        NOT NULL,
    position           integer     NOT NULL,
    priorities         text[]      NOT NULL DEFAULT '{}',
    categories         text[]      NOT NULL DEFAULT '{}',
    customer_tiers     text[]      NOT NULL DEFAULT '{}',
    first_response     interval    CHECK (first_response > '0'),
    next_response      interval    CHECK (next_response > '0'),
    resolution         interval    CHECK (resolution > '0'),
    calendar_id        uuid        REFERENCES sla_calendars (id),
    warning_percents   integer[]   NOT NULL DEFAULT '{50,80}',
    raise_priority     boolean     NOT NULL DEFAULT false,
    notify_supervisor  boolean     NOT NULL DEFAULT false,
    version            bigint      NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (num_nulls(first_response, next_response, resolution) < 3)
);

CREATE INDEX sla_policies_order ON sla_policies (position, created_at, id);

-- Defaults for the wallet (DESIGN.md "SLA"): first human response within 5 minutes, 2 for urgent tickets
-- (account frozen, suspicious activity, payment failed are urgent by the default priority rules).
-- Next response is twice the first-response target (10 / 5 min): a customer who already talked to a human
-- waits little longer than one who did not. Resolution: 24 h, 4 h for urgent money and security problems.
-- Warnings at 50 % and 80 % of each target. On breach an urgent ticket cannot go higher, so the supervisor is
-- told; any other ticket is raised one priority step and the supervisor told too.
-- Both run on calendar time: the service is staffed 24/7.
INSERT INTO sla_policies
    (id, name, position, priorities, first_response, next_response, resolution, raise_priority, notify_supervisor)
VALUES
    ('5a1a0000-0000-4000-8000-000000000001', 'Urgent', 10, '{urgent}', '2 minutes', '5 minutes', '4 hours',
     false, true),
    ('5a1a0000-0000-4000-8000-000000000002', 'Default', 100, '{}', '5 minutes', '10 minutes', '24 hours',
     true, true);

-- What SLA keeps of each ticket, from ticketing's events. applied_version is the last ticket version applied:
-- an event at or below it is a duplicate or stale and is ignored.
CREATE TABLE sla_tickets (
    ticket_id        uuid        PRIMARY KEY,
    applied_version  bigint      NOT NULL,
    category         text        NOT NULL,
    priority         text        NOT NULL,
    customer_tier    text        NOT NULL,
    queue            text        NOT NULL,
    status           text        NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Ticket events that arrived ahead of a missing version (versions are contiguous: one event per change).
-- They are applied in order once the gap fills, or when the sla.gap timer gives up waiting for it.
CREATE TABLE sla_event_buffer (
    ticket_id    uuid        NOT NULL,
    version      bigint      NOT NULL,
    event_type   text        NOT NULL,
    event_time   timestamptz NOT NULL,
    payload      bytea       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ticket_id, version)
);

-- One row per clock: a metric's cycle on a ticket (next response restarts at every unanswered customer message,
-- resolution at every reopen). Policy fields are copied at start so later edits do not move running clocks.
-- policy_id has no foreign key: statistics outlive a deleted policy.
CREATE TABLE sla_clocks (
    ticket_id           uuid        NOT NULL,
    metric              text        NOT NULL CHECK (metric IN ('first_response', 'next_response', 'resolution')),
    cycle               integer     NOT NULL CHECK (cycle > 0),
    policy_id           uuid        NOT NULL,
    target              interval    NOT NULL,
    calendar_id         uuid,
    warning_percents    integer[]   NOT NULL,
    raise_priority      boolean     NOT NULL,
    notify_supervisor   boolean     NOT NULL,
    state               text        NOT NULL CHECK (state IN ('running', 'paused', 'fulfilled', 'cancelled')),
    started_at          timestamptz NOT NULL,
    deadline            timestamptz NOT NULL,     -- moves later by every pause (paused time is credited back)
    at_risk_at          timestamptz NOT NULL,     -- 80 % of the target, for at_risk in the statistics
    pauses              jsonb       NOT NULL DEFAULT '[]',  -- [{"reason": "pending", "start": ..., "end": ...}]
    paused_total        interval    NOT NULL DEFAULT '0',   -- wall-clock time of closed pauses
    stopped_at          timestamptz,
    breached_at         timestamptz,              -- the deadline that passed
    breach_recorded_at  timestamptz,              -- when it was noticed (later than breached_at after an outage)
    warned              integer[]   NOT NULL DEFAULT '{}',  -- warning percents already announced
    queue               text        NOT NULL DEFAULT '',
    priority            text        NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ticket_id, metric, cycle)
);

-- Statistics select clocks by start time.
CREATE INDEX sla_clocks_started ON sla_clocks (started_at);

-- A ticket's lock for timer handlers: waits at most wait_ms (lock_timeout, local to this block), then gives
-- up. Events take the same lock without a limit: pg_advisory_xact_lock(hashtextextended('sla:' || id, 0)).
CREATE FUNCTION sla_lock_ticket(ticket uuid, wait_ms integer) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    previous text := current_setting('lock_timeout');
BEGIN
    PERFORM set_config('lock_timeout', wait_ms || 'ms', true);
    PERFORM pg_advisory_xact_lock(hashtextextended('sla:' || ticket::text, 0));
    PERFORM set_config('lock_timeout', previous, true);
    RETURN true;
EXCEPTION WHEN lock_not_available THEN
    RETURN false;  -- the block's subtransaction rolls back, lock_timeout included
END;
$$;
