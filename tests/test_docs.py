"""The docs cannot go stale silently: every file, module, make target, DAG role and page the
README and docs/ name exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from include.foundation.links import DAG_ROLES

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP_FOLDERS = ("dags/", "include/", "plugins/", "scripts/", "tests/", "docs/", "docker/", ".ci/")
TOP_FILES = {"Makefile", "Dockerfile", "docker-compose.yaml", "requirements.txt", "requirements.in",
             "pyproject.toml", ".env.example", "README.md"}  # fmt: skip
TEMPLATED = re.compile(r"[<>*{}$ ]|\.\.\.|…")


def code_spans(text: str) -> list[str]:
    """Inline code and fenced blocks' words (a path in a shell line counts too)."""
    spans = re.findall(r"`([^`\n]+)`", text)
    for block in re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S):
        spans.extend(block.split())
    return spans


def named_paths(text: str) -> set[str]:
    found = set()
    for span in code_spans(text):
        for word in re.split(r"[\s,;()=\[\]\"']+", span):
            word = word.split("::")[0].rstrip(".:")
            word = re.sub(r":\d+(-\d+)?$", "", word)
            if TEMPLATED.search(word) or "://" in word:
                continue
            if word.startswith(TOP_FOLDERS) or word in TOP_FILES:
                found.add(word)
    return found


def named_modules(text: str) -> set[str]:
    return {m for span in code_spans(text) for m in re.findall(r"\binclude(?:\.[a-z_][a-z0-9_]*)+", span)}


def module_exists(dotted: str) -> bool:
    """``include.stages.registry.promote`` exists if ``include/stages/registry.py`` does (and
    names ``promote``); a package counts too."""
    parts = dotted.split(".")
    for i in range(len(parts), 1, -1):
        base = ROOT.joinpath(*parts[:i])
        source = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
        if source.exists():
            rest = parts[i:]
            return (
                not rest
                or re.search(rf"\b(def|class)\s+{rest[0]}\b|^{rest[0]}\s*[:=]", source.read_text(), re.M)
                is not None
            )
    return False


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), flags=re.M))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_and_page_the_docs_name_exists(page):
    text = page.read_text()
    missing = [p for p in sorted(named_paths(text)) if not (ROOT / p.rstrip("/")).exists()]
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    missing += [f"link {link}" for link in links if "://" not in link and not (page.parent / link).exists()]
    assert not missing, f"{page.name} names what is not there: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_make_target_and_dag_role_the_docs_name_exists(page):
    text = page.read_text()
    bad = [m for m in sorted(named_modules(text)) if not module_exists(m)]
    targets = make_targets()
    bad += [f"make {t}" for t in sorted(set(re.findall(r"`make ([a-z][a-z-]*)", text))) if t not in targets]
    bad += [f"DAG role {r}" for r in sorted(set(re.findall(r"__([a-z_]+)`", text))) if r not in DAG_ROLES]
    assert not bad, f"{page.name} names what is not there: {bad}"


def test_the_readme_is_a_map_a_newcomer_reads_in_five_minutes():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, len(lines)
    for page in PAGES[1:]:
        assert f"docs/{page.name}" in "\n".join(lines) or page.name == "README.md", page.name


def test_the_check_finds_a_stale_name(tmp_path):
    """A doc naming a file or module that is gone fails (the check can fail)."""
    text = "see `include/stages/gone.py` and `include.stages.gone.run` and `make nothing`"
    assert named_paths(text) == {"include/stages/gone.py"}
    assert not module_exists("include.stages.gone.run") and module_exists("include.stages.registry.promote")
    assert "nothing" not in make_targets()


def test_make_run_takes_the_pipeline_the_docs_say():
    """``make run PIPELINE=name`` is the documented way to run your own pipeline."""
    import subprocess

    dry = subprocess.run(["make", "-n", "run", "PIPELINE=shop", "FIRST_WEEK=2024-01-02", "WEEKS=8"],
                         cwd=ROOT, capture_output=True, text=True, check=True)  # fmt: skip
    assert "scripts/demo.py --pipeline shop --first-week 2024-01-02 --weeks 8" in dry.stdout, dry.stdout
    bare = subprocess.run(["make", "-s", "run"], cwd=ROOT, capture_output=True, text=True)
    assert bare.returncode != 0 and "usage: make run PIPELINE=<name>" in bare.stdout + bare.stderr
