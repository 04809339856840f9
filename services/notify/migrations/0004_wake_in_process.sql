-- Delivery workers are woken by their own process after a commit (services/kit/wake.py, ADR 0060).
DROP TRIGGER deliveries_inserted ON deliveries;
DROP TRIGGER deliveries_updated ON deliveries;
DROP FUNCTION deliveries_notify();
