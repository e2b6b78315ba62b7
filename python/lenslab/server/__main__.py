"""``python -m lenslab.server serve ...``: the same as the ``lenslab`` command."""

import sys

from .cli import main

sys.exit(main())
