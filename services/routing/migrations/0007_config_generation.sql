-- What admins configure (routing rules, queues, SLA policies and calendars) is read by every ticket event.
-- Replicas cache it, keyed by this generation: any change to those tables gives it a new random value, so one
-- indexed read tells a replica whether its copy is current, and a value never means two different configs
-- (not even across databases, which lets a process share one cache between them).

CREATE TABLE config_generation (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation  uuid    NOT NULL
);
INSERT INTO config_generation (generation) VALUES (gen_random_uuid());

CREATE FUNCTION bump_config_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE config_generation SET generation = gen_random_uuid();
    RETURN NULL;
END
$$;

CREATE TRIGGER routing_rules_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON routing_rules
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_generation();
CREATE TRIGGER queues_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON queues
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_generation();
CREATE TRIGGER sla_policies_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sla_policies
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_generation();
CREATE TRIGGER sla_calendars_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sla_calendars
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_generation();
