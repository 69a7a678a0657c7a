"""The project's argument parser (`rexkg.cli_args`): every long option accepts `--a_b` and `--a-b`; the README
documents the underscore spelling."""

from __future__ import annotations

from rexkg.cli_args import ArgumentParser

__all__ = ["ArgumentParser"]
