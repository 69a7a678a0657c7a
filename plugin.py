"""ms-swift external plugin of CheX-Phi4MM: `swift rlhf ... --external_plugins plugin.py`.

Importing it installs our ms-swift extensions (native Phi-4-multimodal model type `phi4_mm_native`).
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
