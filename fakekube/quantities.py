"""Resource quantities ("100m", "2Gi", "1e3") as exact decimals, and their sums per resource name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

_SUFFIXES: dict[str, Decimal] = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def parse(value: Any) -> Decimal:
    text = str(value).strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            number = text[: -len(suffix)]
            break
    else:
        suffix, number = "", text
    try:
        return Decimal(number) * _SUFFIXES[suffix]
    except InvalidOperation as exc:
        raise ValueError(f"quantities must match the regular expression: {value!r}") from exc


def render(value: Decimal) -> str:
    """The shortest plain form: whole numbers as such, fractions in milli-units."""
    if value == value.to_integral_value():
        return str(int(value))
    return f"{int(value * 1000)}m"


def pod_totals(pod: Mapping[str, Any]) -> dict[str, Decimal]:
    """`requests.cpu`, `limits.memory`, `requests.nvidia.com/gpu` ... summed over the pod's app containers.

    Init containers run one at a time before the app containers; their peak counts when it is higher.
    """
    spec = pod.get("spec") or {}
    totals = _sum(spec.get("containers") or [])
    for init in _sum_each(spec.get("initContainers") or []):
        for name, value in init.items():
            totals[name] = max(totals.get(name, Decimal(0)), value)
    return totals


def _container_amounts(container: Mapping[str, Any]) -> dict[str, Decimal]:
    resources = container.get("resources") or {}
    amounts: dict[str, Decimal] = {}
    requests = dict(resources.get("requests") or {})
    limits = resources.get("limits") or {}
    for name, value in limits.items():
        requests.setdefault(name, value)  # a limit without a request also requests that much
    for kind, table in (("requests", requests), ("limits", limits)):
        for name, value in table.items():
            amounts[f"{kind}.{name}"] = parse(value)
    return amounts


def _sum(containers: Iterable[Mapping[str, Any]]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for amounts in _sum_each(containers):
        for name, value in amounts.items():
            totals[name] = totals.get(name, Decimal(0)) + value
    return totals


def _sum_each(containers: Iterable[Mapping[str, Any]]) -> list[dict[str, Decimal]]:
    return [_container_amounts(c) for c in containers]
