"""Where an evaluation of a checkpoint goes by default: `output/eval/<run name>` (evaluate.py and evaluate.sh alike).

The run is named, not just the checkpoint: every sweep run has a `checkpoint-N`, and evaluations of two runs'
`checkpoint-N` must never share a folder (a resumed evaluation also checks the fingerprint of the parts,
utils/evaluation/identity.py).

>>> run_name("output/sweep/hard_uniform_5000_lr4e-6_g8_beta0.5/checkpoint-625"), run_name("checkpoints/sft/")
('hard_uniform_5000_lr4e-6_g8_beta0.5/checkpoint-625', 'sft')

    python -m utils.evaluation.naming MODEL_PATH     # prints the run name (evaluate.sh uses it)
"""

from __future__ import annotations

import os
import sys
from pathlib import PurePath


def run_name(model_path: str | os.PathLike) -> str:
    """The checkpoint folder's name, with its run folder's name in front when it is a `checkpoint-N`."""
    path = PurePath(os.path.normpath(model_path))
    return f"{path.parent.name}/{path.name}" if path.name.startswith("checkpoint-") else path.name


if __name__ == "__main__":
    print(run_name(sys.argv[1]))
