"""Integrations with agent frameworks; each imports its framework lazily, only when used."""
