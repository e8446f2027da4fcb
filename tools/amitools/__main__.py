"""`python -m amitools`: the same as the `ami` command."""

import sys

from amitools.cli import main

sys.exit(main())
