"""An eval provider written against llama-stack-api that forgot some of the Eval protocol's methods."""

from __future__ import annotations

from typing import Any

from llama_stack_api import Eval  # noqa: F401 - imported as a real provider would


class PartialEval:
    async def run_eval(self, request: Any) -> Any:
        return None


async def get_provider_impl(config: Any, deps: dict[Any, Any]) -> PartialEval:
    return PartialEval()
