"""``python -m hostel.bridge.hub``: the process the processes of a multi-process server share a bridged provider's
worker through (``hostel.bridge._hub``); started by the first of them (``hostel.bridge._shared``)."""

import sys

from hostel.bridge._hub import main

if __name__ == "__main__":
    sys.exit(main())
