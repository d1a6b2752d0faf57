"""Credentials in URLs are replaced wherever hostel writes or shows them."""

from __future__ import annotations

from hostel._redact import redact, redact_all


def test_user_and_password_of_any_url_are_replaced() -> None:
    assert redact("pkg @ https://user:tok@index.example/p.whl") == "pkg @ https://***@index.example/p.whl"
    assert redact("git+https://tok@github.com/o/r.git#egg=r") == "git+https://***@github.com/o/r.git#egg=r"
    assert redact("--index-url https://u:p@a/simple --extra https://b/simple") == (
        "--index-url https://***@a/simple --extra https://b/simple"
    )
    assert redact("name==1.0 and mail user@example.com") == "name==1.0 and mail user@example.com"


def test_nested_values_are_redacted() -> None:
    data = {"spec": {"requirements": ["a @ https://u:p@x/a.whl", "b==1"]}, "n": 3}
    assert redact_all(data) == {"spec": {"requirements": ["a @ https://***@x/a.whl", "b==1"]}, "n": 3}
