-- The earliest running SLA deadline of each queued ticket: the second key of the waiting order.
ALTER TABLE queue_entries ADD COLUMN sla_due_at timestamptz;
