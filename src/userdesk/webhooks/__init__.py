"""Outgoing webhooks: signing and delivering the events queued in the outbox."""
