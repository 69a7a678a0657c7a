"""Shared fixtures: the tiny model and synthetic data are built once per test session, in a temp folder."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A freshly built tiny native Phi-4-MM checkpoint (with vision-lora/)."""
    from tools.make_tiny_model import build

    return build(tmp_path_factory.mktemp("model") / "tiny-phi4mm", seed=0)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """A small synthetic MIMIC-VQA-CoT tree: 8 rows per test split, 24 in the validation pool."""
    from tools.make_demo_data import generate

    root = tmp_path_factory.mktemp("data") / "MIMIC-VQA-CoT"
    generate(root, seed=0, test_size=8, pool_size=24, image_size=112)
    return root


@pytest.fixture(scope="session")
def swift_plugin():
    """Import plugin.py the way ms-swift does (by path), once."""
    from swift.utils import import_external_file

    import_external_file(str(REPO / "plugin.py"))
    return REPO / "plugin.py"


@pytest.fixture
def isolated_environment(monkeypatch):
    """For tests that set environment variables and then run ms-swift: the environment the test started with is
    restored afterwards, reliably. Library context managers (accelerate's
    clear_environment, mock.patch.dict in datasets) snapshot os.environ; when a run fails inside them, the frames
    stay in a reference cycle and restore their snapshot whenever the garbage collector runs, which can be in a
    later test, after monkeypatch has already cleaned up. Collect first, then restore."""
    saved = dict(os.environ)
    yield monkeypatch
    monkeypatch.undo()
    gc.collect()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium (utils/reports/browser.py) for the report pages; skipped, saying why, where
    tools/install_browser.sh could not install it."""
    from utils.reports.browser import browser_missing, headless_chromium

    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    with headless_chromium() as driver:
        yield driver
