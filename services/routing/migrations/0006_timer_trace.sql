-- The trace context of the change that armed a timer: the firing links back to it.
ALTER TABLE timers ADD COLUMN trace jsonb NOT NULL DEFAULT '{}';
