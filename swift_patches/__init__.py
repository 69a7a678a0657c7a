"""Our extensions of ms-swift 4.6, installed through its own extension points (no vendored ms-swift).

`install()` is what `plugin.py` calls: it registers the native Phi-4-multimodal model type and template.
"""

from __future__ import annotations


def install() -> None:
    """Register everything this package adds to ms-swift (idempotent)."""
    from swift_patches import phi4mm

    phi4mm.register()
