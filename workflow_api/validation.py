"""A run start checked against its asset version before anything is published: every error names its field."""

from __future__ import annotations

import math
from typing import Any

from events.payloads.run import RunSpec, StagedInput, spec_for_asset
from schemas.assets import FileInput, ParameterInput, StoredAsset
from schemas.inputs import InputDocument, InputState

ParamValue = str | int | float | bool


def _typed(item: ParameterInput, value: Any) -> tuple[ParamValue | None, str | None]:
    """The value if it fits the parameter's type, else why not."""
    if item.type == "boolean":
        return (value, None) if isinstance(value, bool) else (None, "must be a boolean")
    if item.type == "integer":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, "must be an integer"
        if isinstance(value, float) and not value.is_integer():
            return None, "must be an integer"
        return int(value), None
    if item.type == "number":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None, "must be a number"
        return value, None
    if not isinstance(value, str):
        return None, "must be a string"
    if len(value) > 8192 or "\x00" in value:
        return None, "must be at most 8192 characters, without NUL"
    return value, None


def check_parameters(asset: StoredAsset, given: dict[str, Any]) -> tuple[dict[str, ParamValue], list[dict[str, str]]]:
    declared = {i.name: i for i in asset.definition.inputs if isinstance(i, ParameterInput)}
    errors: list[dict[str, str]] = []
    for name in sorted(set(given) - set(declared)):
        known = ", ".join(sorted(declared)) or "none"
        errors.append({"field": f"parameters.{name}", "message": f"not a parameter of this asset (it takes: {known})"})
    values: dict[str, ParamValue] = {}
    for name, item in declared.items():
        field = f"parameters.{name}"
        if name not in given:
            if item.default is not None:
                values[name] = item.default
            elif item.required:
                errors.append({"field": field, "message": "required"})
            continue
        value, problem = _typed(item, given[name])
        if problem is not None or value is None:
            errors.append({"field": field, "message": problem or "invalid"})
            continue
        if item.minimum is not None and isinstance(value, int | float) and value < item.minimum:
            errors.append({"field": field, "message": f"must be at least {item.minimum:g}"})
            continue
        if item.maximum is not None and isinstance(value, int | float) and value > item.maximum:
            errors.append({"field": field, "message": f"must be at most {item.maximum:g}"})
            continue
        if item.choices is not None and value not in item.choices:
            shown = ", ".join(str(c) for c in item.choices)
            errors.append({"field": field, "message": f"must be one of {shown}"})
            continue
        values[name] = value
    return values, errors


def check_inputs(
    asset: StoredAsset, given: dict[str, str], found: dict[str, InputDocument | None]
) -> tuple[list[StagedInput], list[dict[str, str]]]:
    """`found` maps each given input id to its document if it is the consumer's own (None otherwise)."""
    declared = {i.name: i for i in asset.definition.inputs if isinstance(i, FileInput)}
    errors: list[dict[str, str]] = []
    staged: list[StagedInput] = []
    for name in sorted(set(given) - set(declared)):
        known = ", ".join(sorted(declared)) or "none"
        errors.append({"field": f"inputs.{name}", "message": f"not an input of this asset (it takes: {known})"})
    for name, item in declared.items():
        field = f"inputs.{name}"
        if name not in given:
            if item.required:
                errors.append({"field": field, "message": f"required: upload a {item.kind} and give its input id"})
            continue
        doc = found.get(given[name])
        if doc is None:
            errors.append({"field": field, "message": f"no input {given[name]}"})
        elif doc.state != InputState.READY:
            errors.append({"field": field, "message": f"input {doc.id} is {doc.state}, not ready"})
        elif doc.kind != item.kind:
            errors.append(
                {"field": field, "message": f"input {doc.id} is a {doc.kind}; this input takes a {item.kind}"}
            )
        else:
            staged.append(
                StagedInput(
                    name=name,
                    kind="directory" if item.kind == "directory" else "file",
                    input_id=doc.id,
                    prefix=doc.prefix,
                    path=item.path,
                    size=doc.size,
                    files=len(doc.files),
                )
            )
    return staged, errors


def run_spec(asset: StoredAsset, inputs: list[StagedInput]) -> RunSpec:
    """What the jobs handler runs, resolved from the asset version now: later versions do not change it."""
    return spec_for_asset(asset, inputs)
