"""The project's documents are its own reference: what the sources and docs cite must be in the repository."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
# "docs/architecture.md §4", "README.md", "docs/deploy.md#rbac": a Markdown file named with its path, or bare.
_CITATION = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.md)\b")
# Names of other projects' files, mentioned as such, are no citation.
_NOT_CITATIONS = frozenset({"CHANGELOG.md"})


def _documents() -> list[Path]:
    sources = [*(REPO / "src").rglob("*.py"), *(REPO / "src").rglob("*.pyx"), *(REPO / "docs").glob("*.md")]
    return [REPO / "README.md", *sorted(p for p in sources if "egg-info" not in p.parts)]


def _resolves(cited: str, document: Path) -> bool:
    return (REPO / cited).is_file() or (document.parent / cited).is_file()


def test_every_cited_document_is_a_file_of_this_repository() -> None:
    missing = [
        f"{document.relative_to(REPO)}: {cited}"
        for document in _documents()
        for cited in _CITATION.findall(document.read_text(encoding="utf-8"))
        if cited not in _NOT_CITATIONS and not _resolves(cited, document)
    ]
    assert not missing, f"citations of documents that are not in the repository: {missing}"


def test_the_architecture_sections_the_sources_cite_exist() -> None:
    architecture = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    sections = set(re.findall(r"^## (\d+)\. ", architecture, flags=re.MULTILINE))
    cited = {
        (str(path.relative_to(REPO)), number)
        for path in _documents()
        for number in re.findall(r"architecture\.md §(\d+)", path.read_text(encoding="utf-8"))
    }
    assert cited, "nothing cites docs/architecture.md any more: drop this test or the document"
    dangling = sorted(f"{where} §{number}" for where, number in cited if number not in sections)
    assert not dangling, f"sections of docs/architecture.md that do not exist: {dangling}"
