"""Typed HTTP client for the kfpd API (used by the CLI and the launcher; never the database)."""

from kfpd.client.http import KfpdApiError, KfpdClient

__all__ = ["KfpdApiError", "KfpdClient"]
