"""``python -m autotm_profile``: the autotm-profile command."""

import sys

from .cli import main

sys.exit(main())
