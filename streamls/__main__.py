"""``python -m streamls``: the ``streamls`` command line."""

import sys

from .cli import main

sys.exit(main())
