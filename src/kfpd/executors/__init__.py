"""Executors start launcher processes for container tasks: locally, or on a remote backend."""
