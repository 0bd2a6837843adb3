"""README and docs/ stand on their own: no pointer outside the repository, every docs/ file they name exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_no_reference_outside_the_repository() -> None:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for outside in ("../", "shared/", "DESIGN", "reference §"):
            assert outside not in text, f"{page.name} points outside the repository: {outside!r}"


def test_the_design_documents_exist_and_are_named_where_they_exist() -> None:
    named = {m for page in PAGES for m in re.findall(r"\b([a-z-]+\.md)\b", page.read_text(encoding="utf-8"))}
    docs = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert {"architecture.md", "schema.md", "fill-contract.md", "metrics.md", "optimizer.md"} <= docs
    assert docs <= named  # every design document is reachable from the README or another page
    assert named - {"README.md"} <= docs  # no page names a document that is not there
