"""The benchmark's target check (`bench/targets.py`) and the run order it relies on."""

from __future__ import annotations

import pytest

from bench.clients import (
    CLIENTS_BY_KEY,
    PUKA,
    PUKA_ASYNCIO,
    PUKA_ASYNCIO_IDIOMS,
    PUKA_CALLBACKS,
    PUKA_RETRY,
    PUKA_TRIO,
    RAW,
    RAW_BATCH,
)
from bench.common import LARGE_SIZE, WORKLOADS_BY_KEY
from bench.outcomes import Cell, Outcome
from bench.run import run_order
from bench.targets import PUKA_CLIENTS, Verdict, evaluate, paired, table

MIB = 1024 * 1024


def _cell(workload: str, client: str, *runs: Outcome) -> Cell:
    return Cell(CLIENTS_BY_KEY[client], WORKLOADS_BY_KEY[workload], list(runs))


def _ok(rate: float, cpu: float = 1.0, **fields: float) -> Outcome:
    return Outcome(True, rate=rate, cpu=cpu, **fields)  # type: ignore[arg-type]


FAILED = Outcome(False, "timeout")


def _find(verdicts: list[Verdict], target: str, workload: str) -> Verdict:
    (found,) = [v for v in verdicts if v.target == target and v.workload == workload]
    return found


def test_paired_ratios_are_taken_repetition_by_repetition() -> None:
    puka = _cell("publish", PUKA, _ok(90), FAILED, _ok(60), _ok(50))
    raw = _cell("publish", RAW, _ok(100), _ok(100), _ok(50), _ok(0))
    # the failed repetition and the one whose base is zero are left out
    assert paired(puka, raw) == [0.9, 1.2]
    latency = _cell("rpc", PUKA, _ok(1, p50_us=120.0), _ok(1, p50_us=None))  # type: ignore[arg-type]
    base = _cell("rpc", RAW, _ok(1, p50_us=100.0), _ok(1, p50_us=100.0))
    assert paired(latency, base, lambda r: r.p50_us) == [1.2]


def test_a_throughput_target_is_the_median_of_paired_ratios_not_of_medians() -> None:
    # the machine slows down over the run: every repetition Puka is at 0.95x the ceiling, but
    # the ratio of the medians (85 / 100) would say 0.85x
    raw = _cell("consume-noack", RAW, _ok(100), _ok(50), _ok(200))
    puka = _cell("consume-noack", PUKA, _ok(95), _ok(47.5), _ok(190))
    assert puka.rate is not None and raw.rate is not None
    assert puka.rate / raw.rate == pytest.approx(0.95)
    puka.runs = [_ok(95), _ok(47.5), _ok(85)]  # and in the last one 0.425x
    verdict = _find(
        evaluate({("consume-noack", RAW): raw, ("consume-noack", PUKA): puka}),
        "rate ÷ ceiling",
        "consume-noack",
    )
    assert verdict.measured == pytest.approx(0.95) and verdict.met
    assert verdict.spread == pytest.approx((0.95, 0.95, 0.425))
    puka.runs = [_ok(85), _ok(47.5), _ok(85)]
    verdict = _find(
        evaluate({("consume-noack", RAW): raw, ("consume-noack", PUKA): puka}),
        "rate ÷ ceiling",
        "consume-noack",
    )
    assert verdict.measured == pytest.approx(0.85) and not verdict.met


def test_cpu_is_compared_with_the_best_other_library_only() -> None:
    cells = {
        ("publish", RAW): _cell("publish", RAW, _ok(100, cpu=0.1)),
        ("publish", PUKA): _cell("publish", PUKA, _ok(90, cpu=2.0)),
        ("publish", PUKA_ASYNCIO): _cell("publish", PUKA_ASYNCIO, _ok(90, cpu=3.0)),
        ("publish", "pika-select"): _cell("publish", "pika-select", _ok(80, cpu=5.0)),
        ("publish", "py-amqp"): _cell("publish", "py-amqp", _ok(60, cpu=4.0)),
        ("publish", "aio-pika"): _cell("publish", "aio-pika", FAILED),
    }
    verdict = _find(evaluate(cells), "CPU per message ÷ best other client's", "publish")
    assert verdict.measured == pytest.approx(0.5) and verdict.met  # 2.0 / py-amqp's 4.0
    later = _find(evaluate(cells), "CPU per message ÷ best other client's (issue 22)", "publish")
    assert later.measured == pytest.approx(0.5) and not later.met and later.bound == "<= 0.25x"
    cells["publish", "py-amqp"] = _cell("publish", "py-amqp", _ok(60, cpu=3.9))
    verdict = _find(evaluate(cells), "CPU per message ÷ best other client's", "publish")
    assert not verdict.met
    cells["publish", PUKA] = _cell("publish", PUKA, _ok(90, cpu=0.9))
    later = _find(evaluate(cells), "CPU per message ÷ best other client's (issue 22)", "publish")
    assert later.met  # 0.9 / 3.9


def test_latency_targets_pair_the_p50s() -> None:
    cells = {
        ("confirm-each", RAW): _cell(
            "confirm-each",
            RAW,
            _ok(1, p50_us=100.0),
            _ok(1, p50_us=200.0),  # type: ignore[arg-type]
        ),
        ("confirm-each", PUKA): _cell(
            "confirm-each",
            PUKA,
            _ok(1, p50_us=110.0),
            _ok(1, p50_us=250.0),  # type: ignore[arg-type]
        ),
    }
    verdict = _find(evaluate(cells), "p50 ÷ ceiling's", "confirm-each")
    assert verdict.measured == pytest.approx((1.1 + 1.25) / 2) and verdict.met
    assert verdict.bound == "<= 1.2x"


def test_the_largest_rss_growth_decides_and_declares_compare_two_workloads() -> None:
    grown = [_ok(1, rss_growth_mib=g * LARGE_SIZE / MIB) for g in (2.0, 2.5, 3.1)]
    cells = {
        ("large-consume", PUKA): _cell("large-consume", PUKA, *grown),
        ("declare-seq", PUKA): _cell("declare-seq", PUKA, _ok(500)),
        ("declare-pipelined", PUKA): _cell("declare-pipelined", PUKA, _ok(1400)),
    }
    verdicts = evaluate(cells)
    rss = _find(verdicts, "consumer RSS growth ÷ message size", "large-consume")
    assert rss.measured == pytest.approx(3.1) and not rss.met
    declares = _find(verdicts, "pipelined ÷ one by one", "declare-pipelined")
    assert declares.measured == pytest.approx(2.8) and not declares.met


def test_asyncio_against_the_blocking_client_on_every_workload_both_ran() -> None:
    cells = {
        ("rpc", PUKA): _cell("rpc", PUKA, _ok(100, cpu=1.0), _ok(50, cpu=1.0)),
        ("rpc", PUKA_ASYNCIO): _cell("rpc", PUKA_ASYNCIO, _ok(79, cpu=2.1), _ok(45, cpu=2.1)),
        ("large", PUKA): _cell("large", PUKA, _ok(100, cpu=1.0)),
        ("large", PUKA_ASYNCIO): _cell("large", PUKA_ASYNCIO, _ok(80, cpu=1.5)),
    }
    verdicts = evaluate(cells)
    rate = _find(verdicts, "asyncio rate ÷ blocking", "rpc")
    assert rate.measured == pytest.approx((0.79 + 0.9) / 2) and rate.met
    assert not _find(verdicts, "asyncio CPU ÷ blocking", "rpc").met
    assert _find(verdicts, "asyncio rate ÷ blocking", "large").met
    assert _find(verdicts, "asyncio CPU ÷ blocking", "large").met
    text = table(verdicts)
    assert (
        "| asyncio CPU ÷ blocking | request/reply round trips | <= 2x | 2.10x |  | **no** |" in text
    )


def test_trio_is_held_to_the_same_targets_under_its_own_name() -> None:
    cells = {
        ("confirm-pipelined", PUKA): _cell("confirm-pipelined", PUKA, _ok(100, cpu=1.0)),
        ("confirm-pipelined", PUKA_TRIO): _cell("confirm-pipelined", PUKA_TRIO, _ok(70, cpu=1.5)),
    }
    verdicts = evaluate(cells)
    assert not _find(verdicts, "trio rate ÷ blocking", "confirm-pipelined").met
    assert _find(verdicts, "trio CPU ÷ blocking", "confirm-pipelined").met
    assert not [v for v in verdicts if v.target.startswith("asyncio")]


def test_nothing_measured_nothing_judged() -> None:
    assert evaluate({}) == []
    cells = {("publish", PUKA): _cell("publish", PUKA, FAILED)}
    assert evaluate(cells) == []


def test_consume_ack_is_held_against_the_ceiling_that_merges_its_acks_too() -> None:
    cells = {
        ("consume-ack", RAW): _cell("consume-ack", RAW, _ok(100), _ok(100)),
        ("consume-ack", RAW_BATCH): _cell("consume-ack", RAW_BATCH, _ok(120), _ok(100)),
        ("consume-ack", PUKA): _cell("consume-ack", PUKA, _ok(96), _ok(100)),
    }
    verdicts = evaluate(cells)
    assert _find(verdicts, "rate ÷ ceiling", "consume-ack").measured == pytest.approx(0.98)
    merged = _find(verdicts, "rate ÷ multiple-ack ceiling", "consume-ack")
    assert merged.spread == pytest.approx((0.8, 1.0)) and merged.bound == ">= 0.9x"
    assert merged.measured == pytest.approx(0.9) and merged.met
    cells["consume-ack", PUKA] = _cell("consume-ack", PUKA, _ok(96), _ok(99))
    assert not _find(evaluate(cells), "rate ÷ multiple-ack ceiling", "consume-ack").met
    # the variant ceiling is a ceiling: not an "other client" for the CPU target
    assert RAW_BATCH in PUKA_CLIENTS


def test_each_idiom_is_held_against_the_blocking_client_with_its_own_bound() -> None:
    cells = {
        ("confirm-pipelined", PUKA): _cell("confirm-pipelined", PUKA, _ok(100), _ok(50)),
        ("confirm-pipelined", PUKA_ASYNCIO_IDIOMS): _cell(
            "confirm-pipelined", PUKA_ASYNCIO_IDIOMS, _ok(81), _ok(41)
        ),
        ("confirm-pipelined", PUKA_CALLBACKS): _cell(
            "confirm-pipelined", PUKA_CALLBACKS, _ok(85), _ok(45)
        ),
        ("consume-ack", PUKA): _cell("consume-ack", PUKA, _ok(100)),
        ("consume-ack", PUKA_ASYNCIO_IDIOMS): _cell("consume-ack", PUKA_ASYNCIO_IDIOMS, _ok(85)),
        ("consume-noack", PUKA): _cell("consume-noack", PUKA, _ok(100)),
        ("consume-noack", PUKA_CALLBACKS): _cell("consume-noack", PUKA_CALLBACKS, _ok(95)),
    }
    verdicts = evaluate(cells)
    gather = _find(
        verdicts, "asyncio gather (windows of 1,000) rate ÷ blocking", "confirm-pipelined"
    )
    assert gather.bound == ">= 0.8x" and gather.measured == pytest.approx(0.815) and gather.met
    callbacks = _find(verdicts, "callbacks + loop() rate ÷ blocking", "confirm-pipelined")
    assert callbacks.bound == ">= 0.9x" and callbacks.measured == pytest.approx(0.875)
    assert not callbacks.met  # 0.85 and 0.9: not the 0.8 of the gather idiom
    async_for = _find(verdicts, "asyncio async for + basic_ack rate ÷ blocking", "consume-ack")
    assert async_for.bound == ">= 0.9x" and not async_for.met
    assert _find(verdicts, "callbacks + loop() rate ÷ blocking", "consume-noack").met
    # the idiom clients are Puka's: no "asyncio ÷ blocking" rows, no CPU rows against them
    assert not [v for v in verdicts if v.target.startswith("asyncio rate")]
    assert not [v for v in verdicts if v.target.startswith("CPU")]


def test_the_variant_clients_run_only_their_workloads() -> None:
    for key, runs in (
        (RAW_BATCH, {"consume-ack"}),
        (PUKA_CALLBACKS, {"confirm-pipelined", "consume-noack"}),
        (PUKA_ASYNCIO_IDIOMS, {"confirm-pipelined", "consume-ack"}),
        (PUKA_RETRY, {"confirm-pipelined"}),
    ):
        client = CLIENTS_BY_KEY[key]
        assert client.variant_of in {RAW, PUKA, PUKA_ASYNCIO}
        assert set(WORKLOADS_BY_KEY) - set(client.unsupported) == runs


def test_the_ceilings_and_pukas_clients_run_back_to_back() -> None:
    clients = [CLIENTS_BY_KEY[k] for k in CLIENTS_BY_KEY]
    block = [c.key for c in clients if c.key in PUKA_CLIENTS]
    assert set(block) == {
        RAW,
        PUKA,
        PUKA_ASYNCIO,
        PUKA_TRIO,
        RAW_BATCH,
        PUKA_CALLBACKS,
        PUKA_ASYNCIO_IDIOMS,
        PUKA_RETRY,
    }
    groups = len(clients) - len(block) + 1  # the block, and each other client
    orders = [[c.key for c in run_order(clients, rep)] for rep in range(len(block) * groups)]
    firsts = set()
    for rep, order in enumerate(orders):
        assert sorted(order) == sorted(CLIENTS_BY_KEY)  # each client once
        at = [i for i, key in enumerate(order) if key in PUKA_CLIENTS]
        assert at == list(range(at[0], at[0] + len(block)))  # together
        turn = rep % len(block)
        assert [order[i] for i in at] == block[turn:] + block[:turn]  # each takes each place
        firsts.add(order[0])
    # the block and each other client take turns at going first
    assert set(CLIENTS_BY_KEY) - set(block) <= firsts and firsts & set(block)
    # without Puka's clients, the others simply rotate
    others = [c for c in clients if c.key not in PUKA_CLIENTS]
    assert [c.key for c in run_order(others, 1)] == [c.key for c in others[1:] + others[:1]]
