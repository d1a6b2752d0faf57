"""The HTTP front door (``hostel run``): the app and its routes (``app``), who may reach them (``guard``,
``auth``), answers in Llama Stack's shapes (``shapes``), metrics, and the
server around it all (``serving``). Uses the ``Host``'s public API only.
"""

from __future__ import annotations

from hostel.gateway.app import PROVIDER_DATA_HEADER, TIMEOUT_HEADER, create_app

__all__ = ["PROVIDER_DATA_HEADER", "TIMEOUT_HEADER", "create_app"]
