"""``python -m revdeconv``: the ``revdeconv`` command."""

import sys

from .cli import main

sys.exit(main())
