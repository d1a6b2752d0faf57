from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hostel.cli import main
from tests.conftest import make_config


def test_check_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(make_config(tmp_path))]) == 0
    assert "OK (1 providers: t)" in capsys.readouterr().out


def test_check_lists_every_problem_and_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_config(
        tmp_path,
        providers={
            "tool_runtime": [{"provider_id": "t", "provider_type": "inline::nope"}],
            "inference": [
                {"provider_id": "x", "provider_type": "remote::y", "config": {"k": "${env.HOSTEL_TEST_UNSET}"}}
            ],
        },
    )
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "unknown provider type 'inline::nope'" in err
    assert "HOSTEL_TEST_UNSET is not set" in err


def test_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "nope.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_list_json_reports_env_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", str(make_config(tmp_path)), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["provider_id"] == "t" and rows[0]["provider_type"] == "inline::testprov"
    assert rows[0]["env"] in ("built", "stale", "missing")


def test_check_deep_builds_and_reports_a_provider_that_does_not_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import provider_spec

    path = make_config(tmp_path, specs={"inline/tool_runtime/testprov": provider_spec(module="hostel_not_there")})
    assert main(["check", str(path)]) == 0  # the shallow check cannot know
    capsys.readouterr()
    assert main(["check", "--deep", str(path)]) == 2
    err = capsys.readouterr().err
    assert "does not work there (stage import)" in err and "hostel_not_there" in err and "pip_packages" in err


def test_python_prints_the_interpreter_a_provider_would_get(capsys: pytest.CaptureFixture[str]) -> None:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert main(["python", version]) == 0
    path = capsys.readouterr().out.strip()
    assert subprocess.run(
        [path, "-c", "import sys; print(sys.version)"], check=True, capture_output=True, text=True
    ).stdout.startswith(version)
    assert main(["python", "2.5"]) == 1
    assert "no Python 2.5 found on PATH, under pyenv or uv" in capsys.readouterr().err


_IMPORTS = """
import sys
from hostel.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = ("grpc", "pydantic", "hostel.host", "hostel.supervise", "hostel.launch", "hostel.gateway", "starlette")
print("loaded:", *(name for name in heavy if name in sys.modules))
"""


def test_help_and_check_import_only_what_they_use(tmp_path: Path) -> None:
    """`hostel --help` loads none of the host (it took 0.5 s before any output); `check` loads the config models
    but not grpc, the supervisor or the HTTP stack."""
    config = make_config(tmp_path)
    loaded = {}
    for command in (["--help"], ["check", str(config)]):
        done = subprocess.run([sys.executable, "-c", _IMPORTS, *command], capture_output=True, text=True, check=False)
        loaded[command[0]] = done.stdout.splitlines()[-1]
    assert loaded["--help"] == "loaded:"
    assert loaded["check"] == "loaded: pydantic"


def test_a_misspelled_module_gets_a_did_you_mean_once_its_env_is_built(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import provider_spec

    path = make_config(tmp_path, specs={"inline/tool_runtime/testprov": provider_spec(module="hostel_testprv")})
    assert main(["check", "--deep", str(path)]) == 2
    assert "did you mean 'hostel_testprov'?" in capsys.readouterr().err
    assert main(["check", str(path)]) == 2  # the env is built now: the shallow check sees it too, without a build
    err = capsys.readouterr().err
    assert "module 'hostel_testprv' is not in its env" in err and "did you mean 'hostel_testprov'?" in err


def test_check_deep_validates_each_config_against_its_class_in_its_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    providers = {
        "tool_runtime": [
            {"provider_id": "typo", "provider_type": "inline::testprov", "config": {"greting": "hi"}},
            {"provider_id": "wrong", "provider_type": "inline::testprov", "config": {"greeting": ["not", "text"]}},
        ]
    }
    path = make_config(tmp_path, providers=providers)
    assert main(["check", "--deep", str(path)]) == 2
    err = capsys.readouterr().err
    # A key the class lacks is only a warning (the model ignores it), with the key it probably meant.
    assert "provider typo: config key 'greting' is not a field of its config class (did you mean 'greeting'?)" in err
    assert "provider 'wrong': invalid config for hostel_testprov.Config" in err and "greeting" in err
    assert "provider 'typo': invalid" not in err  # failed at check time, not at start
