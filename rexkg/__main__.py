"""`python -m rexkg`: see rexkg/cli.py."""

import sys

from rexkg.cli import main

sys.exit(main())
