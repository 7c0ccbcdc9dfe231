"""Custom resources checked against the OpenAPI schema of their CustomResourceDefinition the way the API server
checks them under strict field validation (what `kubectl apply` asks for): unknown fields are errors rather than
silently pruned, `nullable` admits null, and the CEL rules (`x-kubernetes-validations`) are evaluated. The CRDs
are the vendored copies in keda/ (KEDA's own files, Apache-2.0)."""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy  # type: ignore[import-untyped]
import jsonschema
import yaml

Schema = dict[str, Any]

CRD_DIR = Path(__file__).resolve().parent / "keda"


@functools.cache
def crd_schemas(directory: Path = CRD_DIR) -> dict[tuple[str, str], Schema]:
    """(apiVersion, kind) -> the served version's openAPIV3Schema, for every CRD file in the directory."""
    schemas: dict[tuple[str, str], Schema] = {}
    for path in sorted(directory.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if version.get("served"):
                    key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                    schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def is_custom(obj: dict[str, Any]) -> bool:
    """Whether the object belongs to an API group of the vendored CRDs (then validated here, not by
    kubernetes-validate)."""
    groups = {api_version.split("/")[0] for api_version, _ in crd_schemas()}
    return str(obj.get("apiVersion", "")).split("/")[0] in groups


def strict(schema: Schema) -> Schema:
    """The schema with unknown fields refused and `nullable` as JSON Schema's null type."""
    schema = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if not isinstance(node, dict):
            return
        if node.get("nullable") and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for key in ("properties", "patternProperties"):
            for child in node.get(key, {}).values():
                visit(child)
        for key in ("items", "additionalProperties", "not"):
            visit(node.get(key))
        for key in ("allOf", "anyOf", "oneOf"):
            for child in node.get(key, []):
                visit(child)

    visit(schema)
    return schema


def _cel_nodes(schema: Schema, value: Any, where: str) -> Iterator[tuple[str, str, str, Any]]:
    """(where, rule, message, self) for every CEL rule of the schema that applies to a value present."""
    for rule in schema.get("x-kubernetes-validations", []):
        # Transition rules compare with the stored object: only on update.
        if "oldSelf" not in rule["rule"]:
            yield where, rule["rule"], rule.get("message", rule["rule"]), value
    if isinstance(value, dict):
        for name, child in schema.get("properties", {}).items():
            if name in value:
                yield from _cel_nodes(child, value[name], f"{where}.{name}")
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name, child_value in value.items():
                yield from _cel_nodes(extra, child_value, f"{where}.{name}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _cel_nodes(schema["items"], item, f"{where}[{index}]")


@functools.cache
def _program(rule: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def validation_errors(obj: dict[str, Any]) -> list[str]:
    """Every schema and CEL violation of the custom resource, each as `Kind/name: where: message`."""
    ident = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    schema = crd_schemas().get((obj.get("apiVersion", ""), obj.get("kind", "")))
    if schema is None:
        return [f"{ident}: no CRD for {obj.get('apiVersion')} {obj.get('kind')}"]
    errors = []
    for error in jsonschema.Draft4Validator(strict(schema)).iter_errors(obj):
        where = ".".join(str(part) for part in error.absolute_path) or "<root>"
        errors.append(f"{ident}: {where}: {error.message}")
    for where, rule, message, value in _cel_nodes(schema, obj, ""):
        try:
            ok = _program(rule).evaluate({"self": celpy.json_to_cel(value)})
        except celpy.CELEvalError as error:
            errors.append(f"{ident}: {where.lstrip('.') or '<root>'}: rule {rule!r} failed: {error}")
            continue
        if ok is not True and ok != celpy.celtypes.BoolType(True):
            errors.append(f"{ident}: {where.lstrip('.') or '<root>'}: {message}")
    return errors
