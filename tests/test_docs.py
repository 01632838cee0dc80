"""The documentation: the site builds strictly, covers the API, and the front door stays a front door."""
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import nvpkit

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CODECS = ("HEVC", "H.264", "AV1", "VVC", "SVT-AV1")


def test_the_site_builds_strictly(tmp_path):
    """No broken link, no missing reference, every docstring parsed: ``mkdocs build --strict``."""
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(DOCS / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], capture_output=True, text=True,
                          env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("load_video", "GuideConfig", "run_experiment", "sweep_table"):
        assert 'id="nvpkit.' in api and name in api
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        assert (tmp_path / "site" / "notebooks" / notebook.stem / "index.html").is_file()


def test_the_api_page_lists_every_public_name():
    page = (DOCS / "pages" / "api.md").read_text()
    listed = set(re.findall(r"^::: [\w.]+\.(\w+)$", page, re.MULTILINE)) | set(re.findall(r"^### `(\w+)`$", page,
                                                                                          re.MULTILINE))
    public = {n for n in nvpkit.__all__ if n not in nvpkit._LAZY}  # the layers themselves are modules
    assert public - listed == set() and listed - public == set()


def test_the_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    assert (ROOT / "docs" / "pages" / "images" / "codec_guide_rd.png").is_file()
    for link in re.findall(r"\]\(([^)#]+)", text):
        if not link.startswith("http"):
            assert (ROOT / link).exists(), link


def test_no_text_speaks_of_sessions_or_issue_numbers():
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *(DOCS / "pages").rglob("*.md")]
    found = [f"{p.relative_to(ROOT)}: {m}" for p in pages if not p.is_symlink()
             for m in re.findall(r"(?:this|previous|next|a later) session|[Ii]ssue \d+", p.read_text())]
    assert not found


def _paragraphs():
    """Every paragraph of prose: the docs, the README, the notebooks' markdown, the package's docstrings."""
    for path in [ROOT / "README.md", *(DOCS / "pages").glob("**/*.md")]:
        if "notebooks" not in path.parts:
            yield from ((path, p) for p in path.read_text().split("\n\n"))
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "markdown":
                yield from ((path, p) for p in "".join(cell["source"]).split("\n\n"))
    for path in (ROOT / "nvpkit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                yield from ((path, p) for p in node.value.value.split("\n\n"))


def test_every_list_of_video_codecs_names_all_of_them():
    """Prose that lists three or more of the video codecs lists all five (tables of measured rows aside)."""
    stale = []
    for path, paragraph in _paragraphs():
        if paragraph.lstrip().startswith("|"):
            continue
        named = {c for c in CODECS if re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", paragraph)}
        if len(named) >= 3 and len(named) < len(CODECS):
            stale.append(f"{path.relative_to(ROOT)}: {sorted(set(CODECS) - named)} missing in {paragraph[:80]!r}")
    assert not stale
