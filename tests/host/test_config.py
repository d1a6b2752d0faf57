from __future__ import annotations

from pathlib import Path

import pytest

from hostel.config import load_run_config
from hostel.config.plan import load_plan
from hostel.errors import ConfigError
from tests.conftest import make_config, provider_spec, write_yaml


def _problems(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    return "\n".join(str(p) for p in exc.value.problems)


def test_env_substitution_forms() -> None:
    config = load_run_config(
        {
            "providers": {
                "inference": [
                    {
                        "provider_id": "p",
                        "provider_type": "remote::x",
                        "config": {
                            "set": "${env.A}",
                            "default": "${env.MISSING:=fallback}",
                            "plus_set": "${env.A:+yes}",
                            "plus_unset": "${env.MISSING:+yes}",
                            "inline": "http://${env.A}:1/v1",
                        },
                    }
                ]
            }
        },
        environ={"A": "alpha"},
    )
    assert config.providers[0].entry.config == {
        "set": "alpha", "default": "fallback", "plus_set": "yes", "plus_unset": "", "inline": "http://alpha:1/v1",
    }  # fmt: skip


def test_missing_env_var_is_named_with_its_key() -> None:
    with pytest.raises(ConfigError) as exc:
        load_run_config(
            {
                "providers": {
                    "inference": [
                        {"provider_id": "p", "provider_type": "remote::x", "config": {"url": "${env.NOPE_X}"}}
                    ]
                }
            },
            environ={},
        )
    text = _problems(exc)
    assert "NOPE_X is not set" in text and "providers.inference[p].config.url" in text


def test_empty_provider_id_disables_the_provider_as_in_llama_stack() -> None:
    config = load_run_config(
        {"providers": {"inference": [{"provider_id": "${env.ENABLE:+p}", "provider_type": "remote::x"}]}}, environ={}
    )
    assert config.providers == ()


def test_models_table_old_and_new_locations() -> None:
    entry = {"provider_id": "p", "provider_type": "remote::x"}
    old = load_run_config({"providers": {"inference": [entry]}, "models": [{"model_id": "m", "provider_id": "p"}]})
    new = load_run_config(
        {
            "providers": {"inference": [entry]},
            "registered_resources": {"models": [{"model_id": "m", "provider_id": "p"}]},
        }
    )
    assert old.models[0].model_id == new.models[0].model_id == "m"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_run_config(
            {
                "providers": {
                    "telepathy": [],
                    "inference": [{"provider_id": "a", "provider_type": "cloud::x"}, {"provider_type": "remote::y"}],
                },
                "models": [{"model_id": "m", "provider_id": "ghost"}],
                "hostel": {"call_timeout_s": -1},
            }
        )
    text = _problems(exc)
    for needle in ["unknown API 'telepathy'", "'remote::NAME'", "provider_id", "no provider 'ghost'", "call_timeout_s"]:
        assert needle in text, needle
    assert len(exc.value.problems) >= 5


def test_missing_external_providers_dir(tmp_path: Path) -> None:
    path = make_config(tmp_path, specs={})  # writes no providers.d
    with pytest.raises(ConfigError, match="does not exist"):
        load_plan(path)


def test_bad_yaml_in_a_spec(tmp_path: Path) -> None:
    path = make_config(tmp_path)
    (tmp_path / "providers.d/inline/tool_runtime/broken.yaml").write_text("module: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: not valid YAML"):
        load_plan(path)


def test_unknown_api_directory(tmp_path: Path) -> None:
    path = make_config(
        tmp_path, specs={"inline/telepathy/x": provider_spec(), "inline/tool_runtime/testprov": provider_spec()}
    )
    with pytest.raises(ConfigError) as exc:
        load_plan(path)
    assert "unknown API 'telepathy'; known APIs: providers, inference" in _problems(exc)


def test_adapter_type_must_equal_the_file_stem(tmp_path: Path) -> None:
    spec = {"adapter": {"adapter_type": "other_name", "module": "m", "pip_packages": []}}
    path = make_config(
        tmp_path,
        specs={"remote/inference/custom": spec},
        providers={"inference": [{"provider_id": "c", "provider_type": "remote::custom"}]},
    )
    with pytest.raises(ConfigError) as exc:
        load_plan(path)
    assert "adapter.adapter_type: is 'other_name' but the file is named 'custom'.yaml" in _problems(exc)


def test_unknown_provider_type_lists_the_known_ones(tmp_path: Path) -> None:
    path = make_config(tmp_path, providers={"tool_runtime": [{"provider_id": "t", "provider_type": "inline::nope"}]})
    with pytest.raises(ConfigError) as exc:
        load_plan(path)
    text = _problems(exc)
    assert "unknown provider type 'inline::nope'" in text and "inline/tool_runtime/nope.yaml" in text
    assert "known tool_runtime types: inline::testprov" in text


def test_relative_paths_resolve_against_their_files(tmp_path: Path) -> None:
    spec = provider_spec(pip_packages=["../../pkg", "requests>=2"])
    path = make_config(
        tmp_path,
        specs={"inline/tool_runtime/testprov": spec},
        providers={
            "tool_runtime": [{"provider_id": "t", "provider_type": "inline::testprov", "pip_packages": ["./extra"]}]
        },
    )
    plan = load_plan(path).provider("t")
    assert plan.worker.pip_packages == (str(tmp_path / "providers.d" / "pkg"), "requests>=2", str(tmp_path / "extra"))


def test_remote_spec_with_adapter_block_and_flat_inline_spec(tmp_path: Path) -> None:
    remote = {
        "adapter": {"adapter_type": "custom", "module": "pkg", "config_class": "pkg.C", "pip_packages": ["a"]},
        "api_dependencies": [],
    }
    path = make_config(
        tmp_path,
        specs={"remote/inference/custom": remote, "inline/tool_runtime/testprov": provider_spec()},
        providers={
            "inference": [{"provider_id": "c", "provider_type": "remote::custom"}],
            "tool_runtime": [{"provider_id": "t", "provider_type": "inline::testprov"}],
        },
    )
    plan = load_plan(path)
    assert plan.provider("c").spec.kind == "remote" and plan.provider("c").spec.module == "pkg"
    assert plan.provider("t").spec.kind == "inline" and plan.provider("t").spec.config_class == "hostel_testprov.Config"


def test_dependency_order_cycles_and_missing_apis(tmp_path: Path) -> None:
    specs = {
        "inline/vector_io/store": provider_spec(
            api_dependencies=["inference"], optional_api_dependencies=["vector_io"]
        ),
        "inline/inference/embedder": provider_spec(),
    }
    providers = {
        "vector_io": [{"provider_id": "store", "provider_type": "inline::store"}],
        "inference": [{"provider_id": "emb", "provider_type": "inline::embedder"}],
    }
    plan = load_plan(make_config(tmp_path, specs=specs, providers=providers))
    assert [p.provider_id for p in plan.providers] == ["emb", "store"]

    write_yaml(tmp_path / "providers.d/inline/inference/embedder.yaml", provider_spec(api_dependencies=["vector_io"]))
    with pytest.raises(ConfigError, match="API dependency cycle"):
        load_plan(tmp_path / "run.yaml")

    del providers["inference"]
    with pytest.raises(ConfigError, match="needs API 'inference'"):
        load_plan(make_config(tmp_path, specs=specs, providers=providers))


def test_unknown_keys_in_a_provider_entry_or_hostel_are_errors_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as caught:
        load_run_config(
            {
                "providers": {"inference": [{"provider_id": "p", "provider_type": "remote::x", "sandbx": True}]},
                "hostel": {"call_timeout": 5, "restart": {"max_restart": 3}},
                "vector_dbs": [],  # a Llama Stack key hostel knowingly ignores: no error
            }
        )
    problems = _problems(caught)
    assert "providers.inference[p].sandbx: unknown key 'sandbx' in a provider entry (did you mean 'sandbox'?)" in (
        problems
    )
    assert "hostel.call_timeout: unknown key 'call_timeout' (did you mean 'call_timeout_s'?)" in problems
    assert "hostel.restart.max_restart: unknown key 'max_restart' (did you mean 'max_restarts'?)" in problems
    assert problems.count("unknown key") == 3


def test_a_config_error_names_the_provider_and_the_one_union_branch_that_fits(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        "providers:\n  tool_runtime:\n"
        "    - {provider_id: boot, provider_type: 'inline::x', sandbox: {network: off}}\n"
        "    - {provider_id: two, provider_type: 'inline::x', sandbox: maybe}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_run_config(config)
    problems = _problems(caught)
    assert len(caught.value.problems) == 2, problems  # not one line per union member the user never wrote
    assert "providers.tool_runtime[boot].sandbox.network: Input should be 'any' or 'none', or a mapping (got False); " \
        "YAML reads unquoted yes/no/on/off as true/false: quote the value" in problems  # fmt: skip
    assert "providers.tool_runtime[two].sandbox: Input should be a valid boolean, unable to interpret input, or a " \
        "mapping (got 'maybe')" in problems  # fmt: skip
    assert "SandboxSettings" not in problems and ".bool" not in problems


def test_a_yaml_error_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("providers: [\n")
    with pytest.raises(ConfigError) as caught:
        load_run_config(config)
    assert f'in "{config}", line 2' in _problems(caught) and "<unicode string>" not in _problems(caught)
