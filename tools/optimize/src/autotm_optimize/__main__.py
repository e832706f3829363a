"""``python -m autotm_optimize``: the same as the ``autotm-optimize`` command."""

import sys

from .cli import main

sys.exit(main())
