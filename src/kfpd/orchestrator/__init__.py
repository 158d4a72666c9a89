"""The orchestrator's decisions, as pure functions over the IR and recorded task data:
which tasks of a DAG may start, their types, their resolved inputs, conditions, cache keys
and launch specs. Reading and writing rows is the services' job (services/orchestration.py)."""
