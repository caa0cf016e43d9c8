"""The guide in docs/ cannot drift from the code.

For every page docs/*.md:
- every fenced ```python block runs: the blocks of one page in order, in one namespace,
  in a scratch directory. A block is skipped only when marked with a visible reason,
  ```python skip (needs a GPU) -- a bare "skip" or any other marker is an error;
- every line ``Implemented in: [`path`](../path) — `name`, `Class.method` ...`` names a
  file that exists, links to it, and names things defined at the top of that file and
  reachable from its module by attribute access;
- every relative link (pages, code files, images) points at something that exists, and
  every image in docs/img is under 200 KB;
- every ``numpyllm ...`` command in a ```bash block parses with the real command line;
- docs/README.md links to every page, and every page but it has a runnable example and
  an "Implemented in" line.
"""
from __future__ import annotations

import ast
import importlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
PAGE_IDS = [p.name for p in PAGES]

IMPLEMENTED = re.compile(r"^Implemented in: \[`(?P<path>[^`]+)`\]\((?P<link>[^)\s]+)\) — "
                         r"(?P<names>`[^`]+`(?:, `[^`]+`)*)\s*$")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
SKIP = re.compile(r"^python skip \((?P<reason>[^)]+)\)$")


@dataclass
class Block:
    info: str          # what follows the opening ```
    code: str
    line: int          # line number of the first line of code (1-based)


def fenced_blocks(text: str) -> list[Block]:
    """The ``` fenced blocks of a markdown text, in order."""
    blocks, info, start, lines = [], None, 0, []
    for number, line in enumerate(text.splitlines(), 1):
        if info is None:
            if line.startswith("```"):
                info, start, lines = line[3:].strip(), number + 1, []
        elif line.strip() == "```":
            blocks.append(Block(info, "\n".join(lines) + "\n", start))
            info = None
        else:
            lines.append(line)
    assert info is None, f"a ``` block opened at line {start - 1} is never closed"
    return blocks


def run_python_blocks(path: Path, text: str) -> list[str]:
    """Run the page's python blocks in order in one namespace; return the skip reasons.
    Tracebacks name the page and the line of the markdown file."""
    namespace = {"__name__": f"docs.{path.stem}"}
    skipped = []
    for block in fenced_blocks(text):
        if not block.info.startswith("python"):
            continue
        if block.info != "python":
            marker = SKIP.match(block.info)
            assert marker, (f"{path.name}:{block.line - 1}: unknown block marker "
                            f"{block.info!r}; use ```python, or ```python skip (reason)")
            skipped.append(marker["reason"])
            continue
        # blank lines before the code, so line numbers in a traceback are the page's
        code = compile("\n" * (block.line - 1) + block.code, str(path), "exec")
        exec(code, namespace)
    return skipped


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                      # examples may write files
    run_python_blocks(page, page.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ names and links
def top_level_names(path: Path) -> set:
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def implemented_in(text: str) -> list[tuple[str, str, list[str]]]:
    """(path, link, names) of every "Implemented in:" line, which must be well formed."""
    refs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.startswith("Implemented in"):
            continue
        m = IMPLEMENTED.match(line)
        assert m, (f"line {number}: write it as  Implemented in: [`numpyllm/x.py`]"
                   f"(../numpyllm/x.py) — `name`, `Class.method`  (got {line!r})")
        refs.append((m["path"], m["link"], re.findall(r"`([^`]+)`", m["names"])))
    return refs


def check_reference(path: str, link: str, names: list[str]) -> None:
    file = ROOT / path
    assert file.is_file(), f"{path} does not exist"
    assert (DOCS / link).resolve() == file.resolve(), f"the link {link} is not {path}"
    assert path.startswith("numpyllm/") and path.endswith(".py"), path
    module = importlib.import_module(path[:-3].replace("/", ".").removesuffix(".__init__"))
    defined = top_level_names(file)
    for name in names:
        first = name.split(".")[0]
        assert first in defined, f"{name!r} is not defined at the top of {path}"
        obj = module
        for part in name.split("."):
            assert hasattr(obj, part), f"{path}: {name!r} has no attribute {part!r}"
            obj = getattr(obj, part)


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_implemented_in_names_exist(page):
    for path, link, names in implemented_in(page.read_text(encoding="utf-8")):
        check_reference(path, link, names)


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_links_resolve(page):
    text = page.read_text(encoding="utf-8")
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue                                  # a web address or an anchor
        file = (DOCS / target.split("#")[0]).resolve()
        assert file.exists(), f"{page.name}: the link {target} points at nothing"


def test_images_are_small():
    for image in (DOCS / "img").glob("*"):
        assert image.stat().st_size < 200_000, f"{image.name} is {image.stat().st_size} bytes"


def shell_commands(code: str) -> list[str]:
    """The commands of a shell block: lines joined by a trailing backslash, or while a
    quotation is open (a quoted argument may span lines)."""
    commands, pending, joiner = [], "", "\n"
    for line in code.splitlines():
        pending = pending + joiner + line if pending else line
        joiner = "\n"
        if pending.endswith("\\"):
            pending, joiner = pending[:-1], ""
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:                  # "No closing quotation": the command goes on
            continue
        commands.append(pending)
        pending = ""
    assert not pending, f"unterminated shell command: {pending!r}"
    return commands


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_commands_parse(page):
    from numpyllm.cli import build_parser
    parser = build_parser()
    for block in fenced_blocks(page.read_text(encoding="utf-8")):
        if block.info not in ("bash", "sh", "console"):
            continue
        for command in shell_commands(block.code):
            words = shlex.split(command, comments=True)
            if words[:1] == ["numpyllm"]:
                try:
                    parser.parse_args(words[1:])
                except SystemExit:
                    pytest.fail(f"{page.name}: `{command.strip()}` does not parse")


def test_every_page_is_mapped_and_tied_to_code():
    readme = (DOCS / "README.md").read_text(encoding="utf-8")
    linked = {t.split("#")[0] for t in LINK.findall(readme)}
    for page in PAGES:
        if page.name == "README.md":
            continue
        assert page.name in linked, f"docs/README.md does not link to {page.name}"
        text = page.read_text(encoding="utf-8")
        assert implemented_in(text), f"{page.name} has no 'Implemented in:' line"
        assert any(b.info == "python" for b in fenced_blocks(text)), \
            f"{page.name} has no runnable python example"


# ------------------------------------------------------------------ the checker itself
def test_the_checker_catches_drift(tmp_path):
    page = tmp_path / "page.md"
    with pytest.raises(ZeroDivisionError) as info:
        run_python_blocks(page, "text\n```python\nx = 1\n```\n\n```python\ny = x / 0\n```\n")
    assert info.traceback[-1].lineno + 1 == 7        # the markdown line of `y = x / 0`
    assert run_python_blocks(page, "```python skip (needs a GPU)\nboom\n```\n") == ["needs a GPU"]
    with pytest.raises(AssertionError, match="unknown block marker"):
        run_python_blocks(page, "```python skip\nboom\n```\n")
    with pytest.raises(AssertionError, match="write it as"):
        implemented_in("Implemented in: numpyllm/data.py — TokenWindows\n")
    with pytest.raises(AssertionError, match="not defined at the top"):
        check_reference("numpyllm/data/windows.py", "../numpyllm/data/windows.py", ["NoSuchThing"])
    with pytest.raises(AssertionError, match="not defined at the top"):
        check_reference("numpyllm/nn/__init__.py", "../numpyllm/nn/__init__.py", ["GPT"])
    check_reference("numpyllm/data/windows.py", "../numpyllm/data/windows.py", ["TokenWindows.sample"])
    assert shell_commands('a "x\ny" \\\n  --b 1\nc\n') == ['a "x\ny"   --b 1', "c"]
