"""Command-line parsing shared by every CLI of the project: each long option answers to both spellings.

The project's options are documented with underscores (`--data_root`, `--allow_short`), as ms-swift and the
original scripts spell theirs; `--data-root` and `--allow-short` work too, so a mixed habit never fails.

>>> parser = ArgumentParser(prog="demo")
>>> _ = parser.add_argument("--data_root")
>>> _ = parser.add_argument("--allow-short", action="store_true")
>>> args = parser.parse_args(["--data-root", "x", "--allow_short"])
>>> args.data_root, args.allow_short
('x', True)
"""

from __future__ import annotations

import argparse


class ArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose long options also accept the other spelling (`_` for `-` and back)."""

    def add_argument(self, *names, **kwargs):
        spelled = []
        for name in names:
            if not name.startswith("--"):
                spelled.append(name)
                continue
            underscored = "--" + name[2:].replace("-", "_")  # the documented spelling first: help shows it
            for option in (underscored, "--" + name[2:].replace("_", "-")):
                if option not in spelled and option not in self._option_string_actions:
                    spelled.append(option)
        return super().add_argument(*spelled, **kwargs)
