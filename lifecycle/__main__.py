"""``python -m lifecycle``: the same as the ``lifecycle`` command."""

import sys

from lifecycle._cli import main

sys.exit(main())
