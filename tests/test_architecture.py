"""The shape of the code: rexkg stands alone, packages do not import each other in a cycle, and the pure core imports
without ms-swift or torch.distributed."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("rexkg", "utils", "swift_patches", "tools")
# The pure core: plain Python over plain data (answers, rewards, KG, sampling, validation, evaluation results).
PURE_MODULES = (
    "rexkg",
    "rexkg.rules",
    "utils.scoring.answers",
    "utils.scoring.rewards",
    "utils.scoring.kg_reward",
    "utils.data.sampling",
    "utils.data.validation",
    "utils.data.annotations",
    "utils.evaluation.results",
    "utils.evaluation.identity",
    "utils.data.prompt_budget",
)


def _imports(path: Path) -> set[str]:
    """Top-level project packages a file imports (at any depth of the file, lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names if name.split(".")[0] in PACKAGES}
    return found


def _package_graph() -> dict[str, set[str]]:
    graph = {package: set() for package in PACKAGES}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            graph[package] |= _imports(path) - {package}
    return graph


def test_rexkg_depends_on_nothing_else_in_the_project():
    offenders = {str(p.relative_to(REPO)): _imports(p) - {"rexkg"} for p in (REPO / "rexkg").rglob("*.py")}
    assert {path: deps for path, deps in offenders.items() if deps} == {}


def test_no_import_cycle_between_packages():
    graph = _package_graph()

    def reaches(start: str, goal: str, seen: frozenset = frozenset()) -> bool:
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})) for nxt in graph[start])

    cycles = sorted(package for package in PACKAGES if reaches(package, package))
    assert cycles == [], {package: sorted(graph[package]) for package in PACKAGES}


def test_pure_core_imports_without_ms_swift_or_torch_distributed():
    blocked = "import sys; sys.modules.update({'swift': None, 'torch.distributed': None, 'deepspeed': None})"
    script = f"{blocked}\nimport importlib\nfor name in {PURE_MODULES!r}: importlib.import_module(name)\nprint('ok')"
    completed = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert completed.returncode == 0 and completed.stdout.strip() == "ok", completed.stderr[-2000:]
