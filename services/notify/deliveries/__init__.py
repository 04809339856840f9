"""Durable webhook and email deliveries: rows in Postgres, claimed by workers, attempted with back-off."""
