"""``python -m selectivity``: the command line, also as ``torchrun -m selectivity train CONFIG``."""

import sys

from .cli import main

sys.exit(main())
