"""``python -m autotm_execute``: the autotm-execute command."""

import sys

from .cli import main

sys.exit(main())
