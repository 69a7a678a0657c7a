"""The documents a user reads: a README short enough to read in minutes, in the order a newcomer needs it, and no
document that tells the project's history instead of how to use it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
README_SECTIONS = [
    "Install",
    "Two commands",
    "Checkpoint and data",
    "GPU node: from the SFT checkpoint to an 8-GPU sweep",
    "Evaluation and error analysis",
    "Knobs",
    "Results",
    "Reference",
]


def test_the_readme_is_short_and_in_a_newcomers_order():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    assert re.findall(r"^## (.+)$", text, flags=re.M) == README_SECTIONS


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_no_document_tells_history(document):
    text = document.read_text()
    for pattern in (r"\bissue \d+", r"\bcommit `?[0-9a-f]{7,40}\b", r"\bthis session\b", r"\bprevious session\b"):
        assert not re.search(pattern, text, flags=re.I), f"{document.name}: {re.search(pattern, text, flags=re.I)}"


def test_every_document_the_readme_names_exists():
    for name in re.findall(r"`(docs/[\w.-]+\.md|CHANGELOG\.md)`", (REPO / "README.md").read_text()):
        assert (REPO / name).is_file(), name


def test_a_machine_without_a_gpu_gets_the_cpu_build_of_torch():
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has an NVIDIA GPU: make venv takes the CUDA build on purpose")
    import torch

    assert torch.version.cuda is None, f"torch {torch.__version__} is a CUDA build"
    plan = subprocess.run(
        ["make", "-n", "-W", "requirements.txt", "venv"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert '"torch==2.13.0+cpu"' in plan
