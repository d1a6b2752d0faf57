"""``python -m hostel``."""

import sys

from hostel.cli import main

sys.exit(main())
