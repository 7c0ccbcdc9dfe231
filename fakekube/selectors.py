"""Label and field selectors with the syntax and semantics of kube-apiserver."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from fakekube.errors import bad_request

Matcher = Callable[[Mapping[str, Any]], bool]

_SET = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_CMP = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_./-]*)\s*$")


def _split(selector: str) -> list[str]:
    """Split on commas outside parentheses: `a in (x,y),b=c` has two requirements."""
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [t for t in terms if t.strip()]


def _label_term(term: str) -> Callable[[Mapping[str, str]], bool]:
    cmp = _CMP.match(term)
    if cmp:
        key, op, value = cmp.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    found = _SET.match(term)
    if not found:
        raise bad_request(f"unable to parse requirement: {term!r}")
    negated, key, op, values = found.groups()
    if op:
        if negated:
            raise bad_request(f"unable to parse requirement: {term!r}")
        options = {v.strip() for v in values.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in options
        return lambda labels: labels.get(key) not in options
    if negated:
        return lambda labels: key not in labels
    return lambda labels: key in labels


def label_matcher(selector: str | None) -> Matcher:
    if not selector:
        return lambda _obj: True
    terms = [_label_term(t) for t in _split(selector)]

    def match(obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(term(labels) for term in terms)

    return match


def labels_match(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector object (matchLabels, matchExpressions) against labels; an empty selector matches all."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), set(expr.get("values") or [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _field(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_matcher(selector: str | None) -> Matcher:
    if not selector:
        return lambda _obj: True
    terms: list[tuple[str, bool, str]] = []
    for term in _split(selector):
        cmp = _CMP.match(term)
        if not cmp:
            raise bad_request(f"invalid field selector: {term!r}")
        path, op, value = cmp.groups()
        terms.append((path, op != "!=", value))

    def match(obj: Mapping[str, Any]) -> bool:
        return all((_field(obj, path) == value) is equal for path, equal, value in terms)

    return match
