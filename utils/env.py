"""Typed reads of the environment variables that configure the plugin, with errors that name the variable.

>>> env_flag("CHEX_SURELY_UNSET_FLAG"), env_float("CHEX_SURELY_UNSET_FLOAT", 0.5)
(False, 0.5)
"""

from __future__ import annotations

import os

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def env_flag(name: str, default: bool = False) -> bool:
    """A boolean variable: 1/true/yes/on or 0/false/no/off (any case); unset means `default`."""
    value = os.environ.get(name)
    if value is None:
        return default
    value = value.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"environment variable {name}={os.environ[name]!r} is not a boolean (use 1/0, true/false)")


def _env_number(name: str, default, cast, kind: str):
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return cast(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not {kind}") from None


def env_float(name: str, default: float) -> float:
    """A float variable; unset or empty means `default`."""
    return _env_number(name, default, float, "a number")


def env_int(name: str, default: int) -> int:
    """An integer variable; unset or empty means `default`.

    >>> env_int("CHEX_SURELY_UNSET_INT", 4)
    4
    """
    return _env_number(name, default, int, "an integer")


def torchvision_available() -> bool:
    """True when torchvision imports (PyPI's CUDA-only wheel fails to import next to the CPU torch).

    >>> isinstance(torchvision_available(), bool)
    True
    """
    try:
        import torchvision  # noqa: F401
    except Exception:  # any import failure means torchvision cannot be used here
        return False
    return True
