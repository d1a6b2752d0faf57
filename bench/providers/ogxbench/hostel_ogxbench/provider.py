"""The spec OGX reads for ``module: hostel_ogxbench`` (and hostel, inside the provider's venv)."""

from __future__ import annotations

from ogx_api import Api, RemoteProviderSpec


def get_provider_spec() -> RemoteProviderSpec:
    return RemoteProviderSpec(
        api=Api.inference,
        provider_type="remote::ogxbench",
        adapter_type="ogxbench",
        module="hostel_ogxbench",
        config_class="hostel_ogxbench.BenchConfig",
        pip_packages=[],
    )
