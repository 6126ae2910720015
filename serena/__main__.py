"""`python -m serena` runs the command-line interface."""

from __future__ import annotations

import sys

from serena.cli import main

sys.exit(main())
