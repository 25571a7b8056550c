"""The scale report's consumers checks: the issue's plain ratio, and against the raw ceiling."""

from __future__ import annotations

from bench.scale import Results, checks, write_report


def _results(numbers: dict[tuple[int, str], float]) -> Results:
    return {
        ("consumers", value, client): [{"ok": True, "cpu_us_msg": cpu, "msg_s": 1.0}]
        for (value, client), cpu in numbers.items()
    }


def test_consumers_are_checked_plain_and_against_the_raw_ceiling() -> None:
    results = _results(
        {
            (1, "puka"): 7.0,
            (10_000, "puka"): 10.0,
            (1, "raw"): 3.0,
            (10_000, "raw"): 5.5,
            (1, "puka-asyncio"): 7.0,
        }
    )
    found = {(c.client, c.what): c for c in checks(results, {"consumers": [1, 10_000]})}
    plain = found["puka", "CPU/message at 10k ÷ at 1"]
    assert plain.value == 10.0 / 7.0 and plain.ok is False  # the bound, kept
    relative = found["puka", "the same, ÷ raw's (1.83)"]
    assert relative.value is not None and abs(relative.value - (10 / 7) / (5.5 / 3)) < 1e-9
    assert relative.ok is True
    own = found["puka", "CPU/message less raw's, at 10k ÷ at 1"]
    assert own.value == (10.0 - 5.5) / (7.0 - 3.0) and own.ok is True
    # a client with no number at the top is not judged
    assert found["puka-asyncio", "CPU/message at 10k ÷ at 1"].ok is None


def test_the_report_shows_the_raw_column_and_no_counted_rows_without_io() -> None:
    results = _results({(1, "puka"): 7.0, (1, "raw"): 3.0})
    info = {
        "quick": True,
        "repeat": 1,
        "date": "2026-12-08",
        "minutes": 0.1,
        "machine": {"nproc": 2, "cpu": "x", "ram": "1 GiB"},
        "versions": {},
        "revision": "abc",
        "load": "0",
        "fd_limit": 1024,
        "broker_sockets": "unknown",
        "notes": [],
    }
    text = write_report(results, {"consumers": [1]}, ["puka"], info)
    assert "| consumers | metric | Puka (blocking) | raw socket |" in text
    assert "reads with data per message" not in text
