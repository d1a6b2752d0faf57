from __future__ import annotations

import pytest

from hostel_sdk._handshake import PROTOCOL_VERSION, Handshake, HandshakeError, StartFailure, parse


def test_handshake_round_trips() -> None:
    hs = Handshake(PROTOCOL_VERSION, "unix", "/tmp/x/1.sock", 4242, "0.1.0")
    assert parse(hs.format() + "\n") == hs
    assert hs.target == "unix:///tmp/x/1.sock"


def test_start_failure_round_trips_with_pipes_and_newlines_in_the_message() -> None:
    failure = StartFailure(PROTOCOL_VERSION, "config", "bad | value\nsecond line")
    assert parse(failure.format()) == failure


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("hello world", "expected a line starting with 'hostel'"),
        ("hostel|1|unix|/s", "expected 6"),
        ("hostel|x|unix|/s|1|0.1", "protocol is not an integer"),
        ("hostel|1|pigeon|/s|1|0.1", "unknown network"),
        ('hostel-start-failed|1|lunch|"m"', "unknown start stage"),
    ],
)
def test_bad_lines_are_refused_with_a_reason(line: str, complaint: str) -> None:
    with pytest.raises(HandshakeError, match=complaint.replace("|", r"\|")):
        parse(line)
