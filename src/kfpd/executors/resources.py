"""A task's PipelineSpec ``resources`` in the units remote executors ask for.

KFP writes them twice: numbers (``cpuLimit`` in cores, ``memoryLimit`` in GB) and, since
2.x, Kubernetes quantities (``resourceCpuLimit: "500m"``, ``resourceMemoryLimit: "1Gi"``);
the strings win when both are there. An accelerator is ``{resourceType|type, resourceCount|count}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_SUFFIX = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "K": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Z]{0,2})\s*$")


class QuantityError(ValueError):
    pass


def parse_quantity(text: str | float | int) -> float:
    """A Kubernetes quantity ("500m", "1.5Gi", "2") as a number."""
    if isinstance(text, int | float):
        return float(text)
    match = _QUANTITY.match(str(text))
    if not match or match.group(2) not in _SUFFIX:
        raise QuantityError(f"not a Kubernetes quantity: {text!r}")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def format_quantity(value: float) -> str:
    """A number as a quantity the API accepts: integers plain, fractions in milli-units."""
    if float(value).is_integer():
        return str(int(value))
    return f"{round(value * 1000)}m"


@dataclass(frozen=True)
class Accelerator:
    type: str
    count: int

    @property
    def is_gpu(self) -> bool:
        """A GPU by name: "nvidia.com/gpu", "amd.com/gpu", or KFP's old "NVIDIA_TESLA_T4"."""
        kind = self.type.lower()
        return "gpu" in kind or kind.startswith("nvidia")


@dataclass(frozen=True)
class Requests:
    """What a task asks for; None where it asks for nothing. Strings are quantities."""

    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    accelerator: Accelerator | None = None

    @property
    def cpu(self) -> float | None:
        """Cores to reserve: the request, else the limit."""
        text = self.cpu_request or self.cpu_limit
        return parse_quantity(text) if text else None

    @property
    def memory_bytes(self) -> float | None:
        text = self.memory_request or self.memory_limit
        return parse_quantity(text) if text else None


def _pick(resources: dict[str, Any], quantity_key: str, number_key: str, unit: str) -> str | None:
    text = resources.get(quantity_key)
    if text:
        parse_quantity(text)  # refuse garbage early, with the key in the message below
        return str(text)
    number = resources.get(number_key)
    if number:
        return f"{float(number):g}{unit}"
    return None


def requests_of(resources: dict[str, Any]) -> Requests:
    """The task's requests from PipelineSpec ``resources``; QuantityError on a bad value."""
    try:
        cpu_request = _pick(resources, "resourceCpuRequest", "cpuRequest", "")
        cpu_limit = _pick(resources, "resourceCpuLimit", "cpuLimit", "")
        memory_request = _pick(resources, "resourceMemoryRequest", "memoryRequest", "G")
        memory_limit = _pick(resources, "resourceMemoryLimit", "memoryLimit", "G")
    except QuantityError as exc:
        raise QuantityError(f"task resources: {exc}") from None
    accelerator = None
    spec = resources.get("accelerator") or {}
    kind = spec.get("resourceType") or spec.get("type") or ""
    if kind:
        count = int(spec.get("resourceCount") or spec.get("count") or 1)
        accelerator = Accelerator(str(kind), count)
    return Requests(cpu_request, cpu_limit, memory_request, memory_limit, accelerator)
