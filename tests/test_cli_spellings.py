"""Every CLI accepts both spellings of its long options (rexkg.cli_args.ArgumentParser)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("script", "underscored", "hyphenated"),
    [
        ("tools/validate_data.py", "--no_images", "--no-images"),
        ("tools/sample_data.py", "--allow_short", "--allow-short"),
        ("evaluate.py", "--data_root", "--data-root"),
        ("tools/make_demo_data.py", "--test_size", "--test-size"),
    ],
)
def test_both_spellings_are_accepted_and_help_shows_the_underscore_one(script, underscored, hyphenated):
    shown = subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and f"{underscored}, {hyphenated}" in shown.stdout.replace(
        " " + underscored.upper().lstrip("-"), ""
    )


def test_rexkg_cli_accepts_both_spellings(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "Small left effusion."}\n')
    for spelling in ("--batch_size", "--batch-size"):
        out = tmp_path / f"out{spelling}.jsonl"
        done = subprocess.run(
            [sys.executable, "-m", "rexkg", "extract", "--input", str(source), "--output", str(out), spelling, "2"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert out.read_text().count("\n") == 1
