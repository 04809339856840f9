-- Delivery workers are woken by their own process after a commit (services/kit/wake.py, ADR 0060).
DROP TRIGGER deliveries_changed ON deliveries;
DROP FUNCTION deliveries_notify();
