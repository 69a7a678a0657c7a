"""`python -m rexkg`: see rexkg/cli.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for utils/ when run from another folder

from rexkg.cli import main  # noqa: E402

sys.exit(main())
