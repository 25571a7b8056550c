"""Fixtures of the puka-opentelemetry tests: Puka instrumented with an SDK tracer provider whose
spans land in memory, and uninstrumented after each test whatever happens (no other test of the
suite ever runs with a hook installed)."""

from __future__ import annotations

from collections.abc import Iterator

import puka.hooks
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from puka_opentelemetry import PukaInstrumentor


class Spans:
    """The spans finished while Puka was instrumented, and the provider that made them."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def finished(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.finished() if span.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, (name, [span.name for span in self.finished()])
        return found[0]


@pytest.fixture
def spans() -> Iterator[Spans]:
    """Puka instrumented (`PukaInstrumentor().instrument(tracer_provider=...)`) for the test."""
    assert not puka.hooks.INSTALLED
    recorded = Spans()
    PukaInstrumentor().instrument(tracer_provider=recorded.provider)
    try:
        assert len(puka.hooks.INSTALLED) == 1  # the dependency check passed: it is installed
        yield recorded
    finally:
        PukaInstrumentor().uninstrument()
        recorded.provider.shutdown()
    assert not puka.hooks.INSTALLED
