"""Persistence: tables, engines, sessions, lists. Queries never commit."""
