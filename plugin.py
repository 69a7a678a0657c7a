"""ms-swift external plugin of CheX-Phi4MM: `swift rlhf ... --external_plugins plugin.py`.

Importing it installs our ms-swift extensions (`swift_patches.install()`):
- model/template type `phi4_mm_native` (native transformers Phi-4-multimodal, vision LoRA attached);
- rewards `external_r1v_acc`, `external_answer_strict`, `external_format`, `external_kg_jac`, `external_kg_f1`;
- the `grpo` trainer with per-token log-probs in completions.jsonl, reward sub-score metrics,
  `FREEZE_NON_VISION_PARAMS=1` (vision-LoRA-only training) and `DYNAMIC_SAMPLE_MIN_STD`.
Every environment variable is documented in README.md ("Environment variables").
"""

from __future__ import annotations

import sys
from pathlib import Path

# ms-swift imports this file by path under a generated module name; make the repo's packages importable.
_REPO = str(Path(__file__).resolve().parent)
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

import swift_patches  # noqa: E402

swift_patches.install()
