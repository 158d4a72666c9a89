"""The pipeline IR as typed, immutable objects (see ``model``); ``load_ir`` builds one."""

from kfpd.ir.load import load_ir, raw_items
from kfpd.ir.model import (
    ALL_UPSTREAM_COMPLETED,
    Component,
    Dag,
    DagOutput,
    DagTask,
    Executor,
    Importer,
    IteratorKind,
    LoopIterator,
    PipelineIR,
    RetryPolicy,
    Selector,
)

__all__ = [
    "ALL_UPSTREAM_COMPLETED",
    "Component",
    "Dag",
    "DagOutput",
    "DagTask",
    "Executor",
    "Importer",
    "IteratorKind",
    "LoopIterator",
    "PipelineIR",
    "RetryPolicy",
    "Selector",
    "load_ir",
    "raw_items",
]
