"""Peers of userdesk for the benchmark: other tools serving the same population."""
