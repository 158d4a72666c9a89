"""The engine: drives runs in the server by applying orchestration steps and talking to an
executor (local processes today; a Kubernetes or Ray backend plugs in behind the same interface)."""
