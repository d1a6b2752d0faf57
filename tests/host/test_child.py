"""Child processes: exit seen whatever holds the pipes, output relayed bounded, nothing left behind."""

from __future__ import annotations

import asyncio
import os
import sys

from hostel.launch.child import BURST_BYTES, MAX_LINE_BYTES, Child, LineRelay, printable


def _relay() -> tuple[LineRelay, list[str]]:
    lines: list[str] = []
    return LineRelay(lines.append), lines


def test_a_long_line_is_cut_with_a_marker_even_across_chunks() -> None:
    relay, lines = _relay()
    for _ in range(10):
        relay.feed(b"x" * 100_000)
    relay.feed(b"\nnext\n")
    assert len(lines) == 2 and lines[1] == "next"
    assert lines[0].startswith("x" * MAX_LINE_BYTES) and f"{1_000_000 - MAX_LINE_BYTES} more bytes cut" in lines[0]
    big = b"y" * (MAX_LINE_BYTES * 3)
    relay.feed(b"a\n" + big + b"\nb\n")  # one chunk holding a long line between short ones
    assert lines[2:] == ["a", lines[3], "b"] and len(lines[3]) < MAX_LINE_BYTES + 100


def test_binary_garbage_and_terminal_escapes_are_relayed_escaped() -> None:
    relay, lines = _relay()
    relay.feed(b"\xff\xfe bad utf-8 \x1b[2J\x00 tab\tok \xc3\xa9\r\n")
    assert lines == ["\\xff\\xfe bad utf-8 \\x1b[2J\\x00 tab\tok \u00e9"]
    assert printable(b"\x7f") == "\\x7f"


def test_a_flood_is_dropped_and_counted_but_the_tail_keeps_the_newest_lines() -> None:
    relay, lines = _relay()
    line = b"z" * 1000 + b"\n"
    chunks = 3 * BURST_BYTES // len(line) // 100
    total = chunks * 100
    for _ in range(chunks):
        relay.feed(line * 100)
    relay.feed(b"last words\n")
    relay.close()
    relayed = [entry for entry in lines if entry.startswith("z")]
    assert 0 < len(relayed) < total // 2
    assert relay.lines == total + 1
    assert relay.tail_text(1) == "last words"
    dropped = [entry for entry in lines if "dropped" in entry]
    assert dropped and sum(int(entry.split()[1]) for entry in dropped) == total + 1 - len(relayed) - (
        "last words" in lines
    )


def test_close_relays_an_unfinished_last_line() -> None:
    relay, lines = _relay()
    relay.feed(b"no newline at the end")
    relay.close()
    assert lines == ["no newline at the end"]


async def test_exit_is_seen_while_a_forked_child_holds_the_pipes_and_that_child_is_killed() -> None:
    out: list[bytes] = []
    child = Child(out.append, lambda data: None)
    script = (
        "import os, sys, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    time.sleep(60)\n"  # holds stdout and stderr open
        "else:\n"
        "    print(pid, flush=True)\n"
        "    time.sleep(0.2)\n"
    )
    await child.spawn([sys.executable, "-c", script])
    assert child.exited is not None
    assert await asyncio.wait_for(child.exited, 10) == 0
    grandchild = int(b"".join(out).split()[0])
    for _ in range(100):
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the forked child outlived its parent")
    await child.output_closed(5)
    child.close()


async def test_a_huge_line_on_stderr_does_not_block_the_child() -> None:
    err: list[bytes] = []
    child = Child(lambda data: None, err.append)
    script = "import sys\nsys.stderr.write('x' * 5_000_000 + '\\n')\nsys.stderr.write('still here\\n')\n"
    await child.spawn([sys.executable, "-c", script])
    assert child.exited is not None
    assert await asyncio.wait_for(child.exited, 10) == 0
    await child.output_closed(5)
    relay, lines = _relay()
    relay.feed(b"".join(err))
    assert lines[-1] == "still here" and "more bytes cut" in lines[0]
    child.close()
