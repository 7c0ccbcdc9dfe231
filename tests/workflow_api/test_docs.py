"""The documents a newcomer reads say what the code does: every field an upload answers is described in
docs/workflow-api.md, and the README's layout lists every document in docs/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from workflow_api.models import InputInfo, PresignedUpload

ROOT = Path(__file__).parents[2]


def described_fields(section: str) -> set[str]:
    """The first column of the markdown tables in a section of docs/workflow-api.md."""
    text = (ROOT / "docs" / "workflow-api.md").read_text()
    start = text.index(section)
    end = text.find("\n#", start + len(section))
    return set(re.findall(r"^\| `([a-z_0-9]+)` \|", text[start : end if end > 0 else None], flags=re.MULTILINE))


@pytest.mark.parametrize("model", [InputInfo, PresignedUpload])
def test_every_field_an_upload_answers_is_documented(model: type[BaseModel]) -> None:
    assert set(model.model_fields) <= described_fields("#### What an upload answers")


def test_the_readme_lists_every_document() -> None:
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert f"[docs/{doc.name}](docs/{doc.name})" in layout, doc.name
