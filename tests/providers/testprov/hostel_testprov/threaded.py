"""The test provider, from a module that starts a thread when imported (as some SDK clients do): a process
that imported it cannot fork safely, so hostel's zygote must not import it."""

from __future__ import annotations

import threading
import time

from hostel_testprov import Config, TestProvider, get_provider_impl

threading.Thread(target=time.sleep, args=(3600,), name="import-time", daemon=True).start()

__all__ = ["Config", "TestProvider", "get_provider_impl"]
