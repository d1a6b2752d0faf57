"""Routes calls for one API to its provider, by the ``models`` table when a model is named."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hostel.config import ModelEntry
from hostel.errors import RoutingError
from hostel.proxy import Caller
from hostel.resources import SHIELD, ResourceTables
from hostel.transport.callbacks import NamedMethods

_MODEL_KEYS = ("model", "model_id")


class ApiRouter(NamedMethods):
    """``host.api("inference")``: ``model="llama3"`` goes to the provider the models table names, as its
    ``provider_model_id``; with no model argument, the API's only provider answers."""

    def __init__(
        self,
        caller: Caller,
        api: str,
        provider_ids: Sequence[str],
        models: Sequence[ModelEntry],
        *,
        timeout: float | None = None,
        provider_data: Any = None,
        resources: ResourceTables | None = None,
    ) -> None:
        """``resources``: routes calls that name a benchmark, dataset, scoring function, shield or training
        job to the provider that owns it (a safety API's ``run_moderation`` by the shield its model names)."""
        self._resources = resources
        self._caller = caller
        self.api = api
        self._provider_ids = list(provider_ids)
        self._models = {m.model_id: m for m in models if m.provider_id in provider_ids}
        self._timeout = timeout
        self._provider_data = provider_data

    def route_call(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        """Like ``route``; a single positional request object (``openai_embeddings(request)``, as newer Llama
        Stack callers write it) is routed by the model it names, rewritten in the copy that is sent."""
        if not kwargs and len(args) == 1 and isinstance(args[0], dict):
            provider_id, request = self.route(args[0])
            return provider_id, (request,), {}
        provider_id, rewritten = self.route(kwargs)
        return provider_id, tuple(args), rewritten

    def route(self, kwargs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The provider id for a call with these keyword arguments, and the arguments as rewritten for it."""
        rewritten = dict(kwargs)
        if self.api == SHIELD.api and self._resources is not None and "input" in kwargs:
            # run_moderation: its model names a shield (the shields table's rules, as /v1/moderations has them).
            shield = self._resources.moderation_shield(kwargs.get("model"))
            return str(shield["provider_id"]), {**rewritten, "model": shield["provider_resource_id"]}
        for key in _MODEL_KEYS:
            model = kwargs.get(key)
            if not isinstance(model, str):
                continue
            entry = self._models.get(model)
            if entry is None:
                known = ", ".join(sorted(self._models)) or "none"
                raise RoutingError(
                    f"no {self.api} provider serves model {model!r}; models in the routing table: {known}"
                )
            rewritten[key] = entry.provider_model_id or entry.model_id
            return entry.provider_id, rewritten
        owner = self._resources.route(self.api, kwargs) if self._resources is not None else None
        if owner is not None and owner in self._provider_ids:
            return owner, rewritten
        if len(self._provider_ids) == 1:
            return self._provider_ids[0], rewritten
        if not self._provider_ids:
            raise RoutingError(f"no provider serves API {self.api!r}")
        raise RoutingError(
            f"API {self.api!r} has {len(self._provider_ids)} providers ({', '.join(self._provider_ids)}); "
            "name a model listed in the models table, or call host.provider(id) directly"
        )

    async def invoke(self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Route and call ``method`` by name (what the callback service uses for a provider's ``deps``)."""
        provider_id, routed_args, routed_kwargs = self.route_call(args, kwargs)
        return await self._caller.call(
            provider_id, method, routed_args, routed_kwargs, timeout=self._timeout, provider_data=self._provider_data
        )
