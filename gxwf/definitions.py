"""Reading WorkflowAsset definitions and the sites file from YAML, with errors worded for one line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from gxwf.errors import UserError
from schemas.assets import WorkflowAssetDefinition
from schemas.sites import SitesConfig, local_default

M = TypeVar("M", bound=BaseModel)


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as error:
        raise UserError(f"{path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise UserError(f"{path}: not YAML ({getattr(error, 'problem', None) or 'unreadable'}{where})") from None


def _validate(model: type[M], data: Any, path: Path) -> M:
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise UserError(f"{path}: {field}: {first['msg'].removeprefix('Value error, ')}") from None


def asset_files(target: Path) -> list[Path]:
    if target.is_dir():
        files = sorted([*target.glob("*.yaml"), *target.glob("*.yml")])
        if not files:
            raise UserError(f"{target}: no *.yaml asset definitions in this directory")
        return files
    if not target.exists():
        raise UserError(f"{target}: no such file or directory")
    return [target]


def load_assets(target: Path) -> list[WorkflowAssetDefinition]:
    """Every definition under `target`, all validated before any is applied: a bad file applies nothing."""
    definitions = [_validate(WorkflowAssetDefinition, _load_yaml(path), path) for path in asset_files(target)]
    ids = [d.id for d in definitions]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise UserError(f"{target}: asset ids defined twice: {', '.join(repeated)}")
    return definitions


def load_sites(path: Path | None) -> SitesConfig:
    """The sites file, or this machine as the one local site."""
    if path is None:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return local_default(float(os.cpu_count() or 1), f"{pages // 2**20}Mi")
    return _validate(SitesConfig, _load_yaml(path), path)
