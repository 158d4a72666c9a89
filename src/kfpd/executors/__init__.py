"""Executors run launchers: local subprocesses today, remote backends behind the same interface."""
