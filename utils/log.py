"""The project's logger: `chex.*` names, INFO to stderr by default, DEBUG when `CHEX_DEBUG=1`.

Rewards and hooks log through it instead of printing, so a training run stays quiet unless asked.

>>> get_logger("rewards").name
'chex.rewards'
"""

from __future__ import annotations

import logging
import sys

from utils.env import env_flag

_ROOT = "chex"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at emit time (so redirected or captured stderr sees our records)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def get_logger(name: str) -> logging.Logger:
    """The `chex.<name>` logger; the first call attaches one stderr handler to the `chex` root."""
    root = logging.getLogger(_ROOT)
    if not root.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("[chex %(levelname)s %(name)s] %(message)s"))
        root.addHandler(handler)
        root.propagate = False
    root.setLevel(logging.DEBUG if env_flag("CHEX_DEBUG") else logging.INFO)
    return logging.getLogger(f"{_ROOT}.{name}")
