-- The trace context of the change that armed a timer: the firing links back to it.
ALTER TABLE timers ADD COLUMN trace jsonb NOT NULL DEFAULT '{}';

-- The SLA gauges count running clocks every few seconds; finished ones are most of the table.
CREATE INDEX sla_clocks_running ON sla_clocks (metric, deadline) WHERE state = 'running';
