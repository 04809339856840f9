-- Skill-based routing: queues, agents, rules that relax over time, offers and assignments.
--
-- Safety under any number of replicas is enforced here, not only in code:
--   * an agent never holds more than its capacity: CHECK (active <= capacity), and at commit a deferred
--     constraint trigger checks that `active` equals the agent's pending offers plus open assignments;
--   * a ticket has at most one pending offer and at most one open assignment (partial unique indexes),
--     and its queue entry names at most one holder.

-- Queues -----------------------------------------------------------------------------------------------

CREATE TABLE queues (
    name                text        PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_.-]{0,62}$'),
    direct_assignment   boolean     NOT NULL DEFAULT false,
    offer_timeout       interval    NOT NULL DEFAULT interval '30 seconds'
                                    CHECK (offer_timeout > interval '0' AND offer_timeout <= interval '1 hour'),
    requeue_on_offline  boolean     NOT NULL DEFAULT false,
    version             bigint      NOT NULL DEFAULT 1,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

INSERT INTO queues (name) VALUES ('payments'), ('account_security'), ('cards'), ('complaints'), ('general');
INSERT INTO queues (name) SELECT DISTINCT queue FROM queue_entries ON CONFLICT DO NOTHING;

-- Agents -----------------------------------------------------------------------------------------------

CREATE TABLE agents (
    id                   text        PRIMARY KEY CHECK (id <> '' AND length(id) <= 200),
    display_name         text        NOT NULL,
    languages            text[]      NOT NULL DEFAULT '{}',
    capacity             integer     NOT NULL CHECK (capacity BETWEEN 1 AND 100),
    presence             text        NOT NULL DEFAULT 'offline' CHECK (presence IN ('available', 'away', 'offline')),
    -- Pending offers plus open assignments: what counts against capacity.
    active               integer     NOT NULL DEFAULT 0 CHECK (active >= 0),
    last_assigned_at     timestamptz,
    presence_changed_at  timestamptz NOT NULL DEFAULT now(),
    version              bigint      NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agents_within_capacity CHECK (active <= capacity)
);

CREATE TABLE agent_skills (
    agent_id     text     NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    skill        text     NOT NULL CHECK (skill <> ''),
    proficiency  smallint NOT NULL CHECK (proficiency BETWEEN 1 AND 5),
    PRIMARY KEY (agent_id, skill)
);
CREATE INDEX agent_skills_by_skill ON agent_skills (skill, agent_id);

-- The dispatch index: one row per (agent, skill or '', language or ''), carrying the ordering columns of
-- the agent so that "best eligible agent" is one ordered index range read, whatever the number of agents.
-- Kept in step with `agents` by the trigger below and rebuilt when skills or languages change.
CREATE TABLE agent_keys (
    agent_id          text        NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    skill             text        NOT NULL,
    language          text        NOT NULL,
    proficiency       smallint    NOT NULL,
    active            integer     NOT NULL,
    last_assigned_at  timestamptz,
    -- Available with free capacity: only these rows are in the dispatch index.
    open              boolean     NOT NULL,
    PRIMARY KEY (agent_id, skill, language)
);
CREATE INDEX agent_keys_dispatch
    ON agent_keys (skill, language, active, last_assigned_at NULLS FIRST, proficiency DESC, agent_id)
    WHERE open;

CREATE FUNCTION agent_keys_rebuild(p_agent text) RETURNS void LANGUAGE sql SET search_path FROM CURRENT AS $$
    DELETE FROM agent_keys WHERE agent_id = p_agent;
    INSERT INTO agent_keys (agent_id, skill, language, proficiency, active, last_assigned_at, open)
    SELECT a.id, s.skill, l.language, s.proficiency, a.active, a.last_assigned_at,
           a.presence = 'available' AND a.active < a.capacity
    FROM agents a
    CROSS JOIN LATERAL (
        SELECT skill, proficiency FROM agent_skills WHERE agent_id = a.id
        UNION ALL SELECT '', 0
    ) s
    CROSS JOIN LATERAL (SELECT DISTINCT unnest(a.languages || '{""}'::text[]) AS language) l
    WHERE a.id = p_agent;
$$;

CREATE FUNCTION agent_keys_follow() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE agent_keys
    SET active = NEW.active,
        last_assigned_at = NEW.last_assigned_at,
        open = NEW.presence = 'available' AND NEW.active < NEW.capacity
    WHERE agent_id = NEW.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER agents_keys_follow AFTER UPDATE OF active, capacity, presence, last_assigned_at ON agents
    FOR EACH ROW
    WHEN (OLD.active IS DISTINCT FROM NEW.active OR OLD.capacity IS DISTINCT FROM NEW.capacity
          OR OLD.presence IS DISTINCT FROM NEW.presence OR OLD.last_assigned_at IS DISTINCT FROM NEW.last_assigned_at)
    EXECUTE FUNCTION agent_keys_follow();

-- Rules ------------------------------------------------------------------------------------------------

CREATE TABLE routing_rules (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name              text        NOT NULL CHECK (name <> ''),
    position          integer     NOT NULL CHECK (position >= 0),
    match_categories  text[]      NOT NULL DEFAULT '{}',
    match_languages   text[]      NOT NULL DEFAULT '{}',
    match_priorities  text[]      NOT NULL DEFAULT '{}',
    match_tiers       text[]      NOT NULL DEFAULT '{}',
    queue             text        NOT NULL REFERENCES queues (name),
    -- [{"after_s": 0, "requirements": [{"skill": "payments", "min_proficiency": 4}],
    --   "any_agent": false, "notify_supervisor": false}, ...]
    steps             jsonb       NOT NULL CHECK (jsonb_typeof(steps) = 'array' AND jsonb_array_length(steps) > 0),
    version           bigint      NOT NULL DEFAULT 1,
    request_id        text        UNIQUE,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX routing_rules_order ON routing_rules (position, id);

-- The product's defaults for the wallet's categories; admins edit them through the API.
INSERT INTO routing_rules (name, position, match_categories, queue, steps) VALUES
    ('Payments', 10, '{payment_failed,transaction_query}', 'payments', '[
        {"after_s": 0,   "requirements": [{"skill": "payments", "min_proficiency": 4}], "any_agent": false, "notify_supervisor": false},
        {"after_s": 60,  "requirements": [{"skill": "payments", "min_proficiency": 2}], "any_agent": false, "notify_supervisor": false},
        {"after_s": 120, "requirements": [], "any_agent": false, "notify_supervisor": true}]'),
    ('Account security', 20, '{account_locked,account_frozen,suspicious_activity,password_reset}', 'account_security', '[
        {"after_s": 0,   "requirements": [{"skill": "account_security", "min_proficiency": 4}], "any_agent": false, "notify_supervisor": false},
        {"after_s": 60,  "requirements": [{"skill": "account_security", "min_proficiency": 2}], "any_agent": false, "notify_supervisor": false},
        {"after_s": 120, "requirements": [], "any_agent": false, "notify_supervisor": true}]'),
    ('Cards', 30, '{bank_card}', 'cards', '[
        {"after_s": 0,   "requirements": [{"skill": "cards", "min_proficiency": 3}], "any_agent": false, "notify_supervisor": false},
        {"after_s": 120, "requirements": [{"skill": "cards", "min_proficiency": 1}], "any_agent": false, "notify_supervisor": false},
        {"after_s": 300, "requirements": [], "any_agent": false, "notify_supervisor": true}]'),
    ('Complaints', 40, '{complaint}', 'complaints', '[
        {"after_s": 0,   "requirements": [{"skill": "complaints", "min_proficiency": 4}], "any_agent": false, "notify_supervisor": false},
        {"after_s": 300, "requirements": [{"skill": "complaints", "min_proficiency": 3}], "any_agent": false, "notify_supervisor": false},
        {"after_s": 900, "requirements": [{"skill": "complaints", "min_proficiency": 2}], "any_agent": false, "notify_supervisor": true}]'),
    ('General', 1000, '{}', 'general', '[
        {"after_s": 0,   "requirements": [], "any_agent": false, "notify_supervisor": false},
        {"after_s": 600, "requirements": [], "any_agent": true,  "notify_supervisor": true}]');

-- Queue entries ----------------------------------------------------------------------------------------

ALTER TABLE queue_entries DROP CONSTRAINT queue_entries_state_check;
ALTER TABLE queue_entries ADD CONSTRAINT queue_entries_state_check
    CHECK (state IN ('waiting', 'offered', 'assigned', 'parked'));

ALTER TABLE queue_entries
    ADD COLUMN priority_rank  smallint GENERATED ALWAYS AS (
        CASE priority WHEN 'urgent' THEN 4 WHEN 'high' THEN 3 WHEN 'normal' THEN 2 ELSE 1 END) STORED,
    ADD COLUMN category       text        NOT NULL DEFAULT '',
    ADD COLUMN language       text        NOT NULL DEFAULT '',
    ADD COLUMN customer_tier  text        NOT NULL DEFAULT '',
    ADD COLUMN ticket_status  text        NOT NULL DEFAULT 'new',
    ADD COLUMN rule_id        uuid,
    -- The rule's steps as they were when the ticket was routed: later edits do not move waiting tickets.
    ADD COLUMN steps          jsonb       NOT NULL DEFAULT '[{"after_s": 0, "requirements": [], "any_agent": true, "notify_supervisor": false}]',
    ADD COLUMN step           integer     NOT NULL DEFAULT 0 CHECK (step >= 0),
    -- Step deadlines count from here: the ticket's creation (or a reopen / transfer to a queue).
    ADD COLUMN routed_since   timestamptz,
    -- Start of the current wait, for wait statistics.
    ADD COLUMN waiting_since  timestamptz,
    -- The step's requirement in indexable form: the first skill and its level, the language ('' = any).
    ADD COLUMN req_skill      text        NOT NULL DEFAULT '',
    ADD COLUMN req_level      smallint    NOT NULL DEFAULT 0,
    ADD COLUMN req_language   text        NOT NULL DEFAULT '',
    -- Further skills the step requires, {"skill": min_proficiency}.
    ADD COLUMN req_extra      jsonb       NOT NULL DEFAULT '{}',
    -- Who is offered or holds the ticket; kept while parked so a reopened ticket returns to them.
    ADD COLUMN agent_id       text        REFERENCES agents (id),
    -- The agent who last let it go (declined, missed, went offline): skipped for the next offer.
    ADD COLUMN last_agent_id  text,
    ADD COLUMN updated_at     timestamptz NOT NULL DEFAULT now();

UPDATE queue_entries SET routed_since = ticket_created_at, waiting_since = enqueued_at;
ALTER TABLE queue_entries ALTER COLUMN routed_since SET NOT NULL, ALTER COLUMN waiting_since SET NOT NULL;
ALTER TABLE queue_entries ADD CONSTRAINT queue_entries_queue_fk FOREIGN KEY (queue) REFERENCES queues (name);
ALTER TABLE queue_entries ADD CONSTRAINT queue_entries_holder
    CHECK ((state IN ('offered', 'assigned')) = (agent_id IS NOT NULL) OR state = 'parked');

-- The dispatch index for "best waiting ticket this agent may take": one ordered range per requirement key.
DROP INDEX queue_entries_waiting;
CREATE INDEX queue_entries_dispatch
    ON queue_entries (req_skill, req_level, req_language, priority_rank DESC, sla_due_at, ticket_created_at, ticket_id)
    WHERE state = 'waiting';
CREATE INDEX queue_entries_waiting ON queue_entries (queue, ticket_created_at) WHERE state = 'waiting';
CREATE INDEX queue_entries_by_agent ON queue_entries (agent_id) WHERE agent_id IS NOT NULL;

-- Offers and assignments -------------------------------------------------------------------------------

CREATE TABLE offers (
    id            uuid        PRIMARY KEY,
    ticket_id     uuid        NOT NULL REFERENCES queue_entries (ticket_id),
    agent_id      text        NOT NULL REFERENCES agents (id),
    queue         text        NOT NULL,
    state         text        NOT NULL CHECK (state IN ('pending', 'accepted', 'declined', 'expired', 'withdrawn')),
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    responded_at  timestamptz,
    reason        text        NOT NULL DEFAULT '',
    CHECK ((state = 'pending') = (responded_at IS NULL))
);
-- A ticket is offered to one agent at a time.
CREATE UNIQUE INDEX offers_one_pending_per_ticket ON offers (ticket_id) WHERE state = 'pending';
CREATE INDEX offers_by_agent ON offers (agent_id, created_at DESC, id);
CREATE INDEX offers_all ON offers (created_at DESC, id);
CREATE INDEX offers_pending ON offers (agent_id) WHERE state = 'pending';
CREATE INDEX offers_pending_by_queue ON offers (queue) WHERE state = 'pending';

CREATE TABLE assignments (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id       uuid        NOT NULL REFERENCES queue_entries (ticket_id),
    agent_id        text        NOT NULL REFERENCES agents (id),
    queue           text        NOT NULL,
    via             text        NOT NULL CHECK (via IN ('offer', 'direct', 'transfer', 'reopen')),
    -- From the start of the wait to this assignment (null for transfers and reopens).
    waited          interval,
    assigned_at     timestamptz NOT NULL,
    released_at     timestamptz,
    release_reason  text
);
-- A ticket is held by one agent at a time: never assigned twice.
CREATE UNIQUE INDEX assignments_one_holder ON assignments (ticket_id) WHERE released_at IS NULL;
CREATE INDEX assignments_open_by_agent ON assignments (agent_id) WHERE released_at IS NULL;
CREATE INDEX assignments_recent ON assignments (queue, assigned_at);

-- At commit, an agent's `active` must equal what it really holds: checked for every agent touched.
CREATE FUNCTION agent_load_check() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    held integer;
    counted integer;
BEGIN
    SELECT active INTO counted FROM agents WHERE id = NEW.agent_id;
    IF counted IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT (SELECT count(*) FROM offers WHERE agent_id = NEW.agent_id AND state = 'pending')
         + (SELECT count(*) FROM assignments WHERE agent_id = NEW.agent_id AND released_at IS NULL)
    INTO held;
    IF held <> counted THEN
        RAISE EXCEPTION 'agent % counts % active tickets but holds %', NEW.agent_id, counted, held
            USING ERRCODE = 'check_violation', CONSTRAINT = 'agents_load_consistent';
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION agent_load_check_self() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    held integer;
BEGIN
    SELECT (SELECT count(*) FROM offers WHERE agent_id = NEW.id AND state = 'pending')
         + (SELECT count(*) FROM assignments WHERE agent_id = NEW.id AND released_at IS NULL)
    INTO held;
    IF held <> (SELECT active FROM agents WHERE id = NEW.id) THEN
        RAISE EXCEPTION 'agent % counts % active tickets but holds %', NEW.id, NEW.active, held
            USING ERRCODE = 'check_violation', CONSTRAINT = 'agents_load_consistent';
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER offers_load_consistent AFTER INSERT OR UPDATE ON offers
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION agent_load_check();
CREATE CONSTRAINT TRIGGER assignments_load_consistent AFTER INSERT OR UPDATE ON assignments
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION agent_load_check();
CREATE CONSTRAINT TRIGGER agents_load_consistent AFTER UPDATE OF active ON agents
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION agent_load_check_self();
