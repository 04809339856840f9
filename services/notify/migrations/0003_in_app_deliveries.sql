-- In-app pushes are deliveries too: recorded with the notification, delivered when the relay's publish of
-- their notification.created event is acknowledged (ADR 0023). The row's id is that event's id.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_channel_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_channel_check CHECK (channel IN ('webhook', 'email', 'in_app'));

-- The delivery workers have nothing to do for in-app rows: wake them only when a row they send changed.
DROP TRIGGER deliveries_changed ON deliveries;
DROP FUNCTION deliveries_notify();

CREATE FUNCTION deliveries_notify() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM changed WHERE channel <> 'in_app') THEN
        PERFORM pg_notify(TG_TABLE_SCHEMA || '_deliveries', '');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER deliveries_inserted AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION deliveries_notify();
CREATE TRIGGER deliveries_updated AFTER UPDATE ON deliveries
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION deliveries_notify();

-- In the relay's own transaction: marking the push published marks its delivery delivered, with the attempt
-- (from the notification's commit to the acknowledged publish). A republished row changes nothing. Both
-- functions keep this schema's search_path, whoever's session fires them.
CREATE FUNCTION in_app_published() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    WITH done AS (
        UPDATE deliveries d SET status = 'delivered', attempts = d.attempts + 1, delivered_at = p.published_at
        FROM published p
        WHERE d.id = p.event_id AND p.published_at IS NOT NULL
          AND d.channel = 'in_app' AND d.status = 'delivering'
        RETURNING d.id, d.attempts, d.next_attempt_at, d.delivered_at
    )
    INSERT INTO delivery_attempts (delivery_id, number, started_at, duration_ms)
    SELECT id, attempts, next_attempt_at, greatest(extract(epoch FROM delivered_at - next_attempt_at) * 1000, 0)
    FROM done;
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_in_app_published AFTER UPDATE ON outbox
    REFERENCING NEW TABLE AS published FOR EACH STATEMENT EXECUTE FUNCTION in_app_published();
