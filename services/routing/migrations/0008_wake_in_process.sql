-- The scheduler is woken by its own process after an arming commit (services/kit/wake.py, ADR 0060).
DROP TRIGGER timers_armed ON timers;
DROP FUNCTION timers_notify();
