"""Persistence: sealed A/B records (records) and the counters kept in them (counters)."""
