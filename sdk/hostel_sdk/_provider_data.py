"""A call's provider data as its provider reads it: decoded, hostel's own keys (who asked, from where) left out, and
validated by the provider's ``provider_data_validator``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hostel_sdk import _llama_stack, codec

logger = logging.getLogger(__name__)


class ProviderDataError(ValueError):
    """The call's provider data did not pass the provider's validator."""


class ProviderDataReader:
    """Reads each call's provider data for one provider. ``lenient``: what the validator rejects reaches the provider
    as none and the call goes on, as a Llama Stack server's own providers read it (their
    ``get_request_provider_data()`` logs the error and returns ``None``); else the call fails with
    ``ProviderDataError``."""

    def __init__(self, validator: Callable[[Any], Any] | None, *, lenient: bool = False) -> None:
        self._validate = validator
        self._lenient = lenient
        self._said_lenient = False

    def read(self, raw: bytes | memoryview) -> tuple[Any, Any]:
        """The call's provider data decoded, and as the provider sees it (validated, hostel's keys left out)."""
        if not raw:
            return None, None
        try:
            decoded = codec.loads(raw)
        except ValueError as exc:
            raise ProviderDataError(f"provider data is not valid JSON: {exc}") from None
        return decoded, self._for_provider(decoded)

    def _for_provider(self, data: Any) -> Any:
        hidden = (_llama_stack.USER_KEY, *_llama_stack.HOSTEL_KEYS)  # who asked, where from: not the validator's
        if isinstance(data, dict) and any(key in data for key in hidden):
            data = {k: v for k, v in data.items() if k not in hidden} or None
            if data is None:
                return None
        if self._validate is None:
            return data
        try:
            return self._validate(data)
        except Exception as exc:  # noqa: BLE001 - any validator failure is the caller's bad data
            if not self._lenient:
                raise ProviderDataError(f"provider data rejected by the provider's validator: {exc}") from None
            # Provider data is the whole request's, often for another provider (an OpenAI key beside a web search):
            # in a Llama Stack server this provider reads none and uses its own config.
            log = logger.debug if self._said_lenient else logger.info
            self._said_lenient = True
            log("provider data does not validate for this provider, which reads none (said once): %s",
                str(exc).splitlines()[:3])  # fmt: skip
            return None
