"""hostel-sdk: the runtime hostel installs into every provider virtualenv.

It never imports ``hostel``; it is installed alone next to a provider and its pins.
"""

from __future__ import annotations

from hostel_sdk._context import request_provider_data
from hostel_sdk.api import Api

__version__ = "0.1.0"

__all__ = ["Api", "__version__", "request_provider_data"]
