"""The launcher: runs one container task and reports it to the server over HTTP.

``python -m kfpd.launcher --spec FILE`` (or the spec JSON on stdin). It never opens the
database: the same program can run in a local process, a Kubernetes pod or a Ray worker.
Exit codes: 0 the outcome was reported (whether the task succeeded or failed), 2 the spec
could not be read, 3 the server did not take the report.
"""
