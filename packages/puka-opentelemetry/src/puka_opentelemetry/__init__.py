"""puka-opentelemetry: OpenTelemetry tracing for Puka, the blocking and the asyncio client alike.

    from opentelemetry.sdk.trace import TracerProvider
    from puka_opentelemetry import PukaInstrumentor, context_of

    PukaInstrumentor().instrument(tracer_provider=TracerProvider())  # or the global provider

Once instrumented, every client of the process (`puka.Client`, `puka_asyncio.AsyncClient`)
makes

- a PRODUCER span per publish (`publish {destination}`), a child of the publishing code's
  current span, ended when the publish's outcome is known: when the broker confirmed it (or,
  without confirms, once it was written), or with an ERROR status and the exception recorded
  when it was nacked, returned as unroutable, lost with the connection or refused. Its trace
  context goes into the message's application headers (the globally configured propagator:
  W3C `traceparent` by default);
- a span per delivered message when it arrives, before the application sees it, with the
  publish's span as its parent (so producer and consumer are one trace) and a link to it:
  CONSUMER `deliver {destination}` for a consume's message, CLIENT `get {destination}` for
  `basic_get`'s. `context_of(message)` gives the context to process the message in, so that
  the application's own spans are children of it.

The attributes follow OpenTelemetry's messaging semantic conventions for RabbitMQ (v1.44).
`uninstrument()` removes it all: Puka then pays nothing for it. The connection's password never
reaches a span.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer
from puka import hooks
from puka.arguments import refuse_type
from puka.connection_parameters import ConnectionParameters
from puka.hooks import Hook, Outcome, OutgoingMessage
from puka.results import Result

from puka_opentelemetry.__about__ import __version__

__all__ = ["SCHEMA_URL", "PukaInstrumentor", "__version__", "context_of"]

SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
"""The semantic conventions the spans follow (their messaging spans, refined for RabbitMQ)."""

_INSTRUMENTS = ("puka-core ~= 0.1",)

# Attribute names (OpenTelemetry semantic conventions, messaging and RabbitMQ)
_SYSTEM = "messaging.system"
_OPERATION_TYPE = "messaging.operation.type"
_OPERATION_NAME = "messaging.operation.name"
_DESTINATION = "messaging.destination.name"
_ANONYMOUS = "messaging.destination.anonymous"
_ROUTING_KEY = "messaging.rabbitmq.destination.routing_key"
_DELIVERY_TAG = "messaging.rabbitmq.message.delivery_tag"
_MESSAGE_ID = "messaging.message.id"
_CONVERSATION_ID = "messaging.message.conversation_id"
_BODY_SIZE = "messaging.message.body.size"
_SERVER_ADDRESS = "server.address"
_SERVER_PORT = "server.port"
_ERROR_TYPE = "error.type"

_DEFAULT_EXCHANGE = "amq.default"
# Names RabbitMQ makes up: a server-named queue, direct reply-to. A destination holding one is
# anonymous, and left out of span names (it would give each its own name).
_GENERATED = ("amq.gen-", "amq.rabbitmq.reply-to")

_NO_CONTEXT = otel_context.Context()


class _HeaderSetter(Setter[OutgoingMessage]):
    """Puts the propagator's fields into a publish's application headers."""

    def set(self, carrier: OutgoingMessage, key: str, value: str) -> None:
        carrier.add_header(key, value)


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """Reads the propagator's fields from a message's headers (text, or UTF-8 bytes as other
    clients may send them)."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if isinstance(value, str):
            return [value]
        if isinstance(value, (bytes, bytearray)):
            return [bytes(value).decode("utf-8", "replace")]
        return None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier)


_SETTER = _HeaderSetter()
_GETTER = _HeaderGetter()


def _publish_destination(exchange: str, routing_key: str) -> str:
    """`{exchange}:{routing key}`, or the one of them that is not empty, or `amq.default`."""
    if exchange and routing_key:
        return f"{exchange}:{routing_key}"
    return exchange or routing_key or _DEFAULT_EXCHANGE


def _delivery_destination(exchange: str, routing_key: str, queue: str) -> str:
    """`{exchange}:{routing key}:{queue}` without the empty parts, the routing key left out
    when it is the queue's name (as through the default exchange)."""
    parts = (exchange, "" if routing_key == queue else routing_key, queue)
    return ":".join(part for part in parts if part) or _DEFAULT_EXCHANGE


def _text(value: Any) -> str:
    """A message id or correlation id as text (a shortstr is text already; bytes from other
    clients are decoded)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


class _TracingHook(Hook):
    """The `puka.hooks.Hook` that makes the spans (installed by `PukaInstrumentor`)."""

    def __init__(self) -> None:
        self.tracer: Tracer = trace.NoOpTracer()
        self.body_size = False

    def on_publish(self, params: ConnectionParameters, message: OutgoingMessage) -> Outcome | None:
        if not is_instrumentation_enabled():
            return None
        exchange, routing_key = message.exchange, message.routing_key
        destination = _publish_destination(exchange, routing_key)
        attributes: dict[str, Any] = {
            _SYSTEM: "rabbitmq",
            _OPERATION_TYPE: "send",
            _OPERATION_NAME: "publish",
            _DESTINATION: destination,
            _SERVER_ADDRESS: params.host,
            _SERVER_PORT: params.port,
        }
        if routing_key:
            attributes[_ROUTING_KEY] = routing_key
        if exchange.startswith(_GENERATED) or routing_key.startswith(_GENERATED):
            attributes[_ANONYMOUS] = True
            name = "publish"
        else:
            name = f"publish {destination}"
        if message.headers or message.properties:
            _ids(attributes, message.property)
        if self.body_size:
            attributes[_BODY_SIZE] = len(message.body)
        span = self.tracer.start_span(name, kind=SpanKind.PRODUCER, attributes=attributes)
        # the creation context: this span's, replacing any trace headers the message came with
        # (a message published again as it was delivered continues the trace from here)
        propagate.inject(message, trace.set_span_in_context(span), _SETTER)
        return _Ending(span)

    def on_delivery(
        self, params: ConnectionParameters, message: Result, queue: str, no_ack: bool
    ) -> None:
        if not is_instrumentation_enabled():
            return
        exchange: str = message.get("exchange", "")
        routing_key: str = message.get("routing_key", "")
        destination = _delivery_destination(exchange, routing_key, queue)
        pushed = message.name == "basic.deliver"  # else a basic.get's message
        operation = "deliver" if pushed else "get"
        attributes: dict[str, Any] = {
            _SYSTEM: "rabbitmq",
            _OPERATION_TYPE: "process" if pushed else "receive",
            _OPERATION_NAME: operation,
            _DESTINATION: destination,
            _DELIVERY_TAG: message.get("delivery_tag", 0),
            _SERVER_ADDRESS: params.host,
            _SERVER_PORT: params.port,
        }
        if routing_key:
            attributes[_ROUTING_KEY] = routing_key
        if (
            queue.startswith(_GENERATED)
            or routing_key.startswith(_GENERATED)
            or exchange.startswith(_GENERATED)
        ):
            attributes[_ANONYMOUS] = True
            name = operation
        else:
            name = f"{operation} {destination}"
        if self.body_size:
            attributes[_BODY_SIZE] = len(message.get("body", b""))
        headers = message.get("headers")
        parent = _NO_CONTEXT  # never the I/O's ambient context: a message is its own story
        links = None
        if headers:  # (no headers, no properties either)
            _ids(attributes, message.properties.get)
            parent = propagate.extract(headers, _NO_CONTEXT, _GETTER)
            creation = trace.get_current_span(parent).get_span_context()
            if creation.is_valid:
                links = (Link(creation),)
        span = self.tracer.start_span(
            name,
            context=parent,
            kind=SpanKind.CONSUMER if pushed else SpanKind.CLIENT,
            attributes=attributes,
            links=links,
        )
        span.end()
        hooks.remember(self, message, (span, parent))


def _ids(attributes: dict[str, Any], property_of: Callable[[str], Any]) -> None:
    """The message id and correlation id attributes, from a message's basic properties."""
    message_id = property_of("message_id")
    if message_id is not None:
        attributes[_MESSAGE_ID] = _text(message_id)
    correlation_id = property_of("correlation_id")
    if correlation_id is not None:
        attributes[_CONVERSATION_ID] = _text(correlation_id)


class _Ending:
    """The outcome function of a publish: ends its span, with an error status if it failed."""

    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span = span

    def __call__(self, result: Result) -> None:
        span = self.span
        exception = result.exception
        if result.is_error and exception is not None and span.is_recording():
            span.set_attribute(_ERROR_TYPE, type(exception).__qualname__)
            span.record_exception(exception)
            span.set_status(Status(StatusCode.ERROR, f"{type(exception).__name__}: {exception}"))
        span.end()


_HOOK = _TracingHook()


# (BaseInstrumentor's module opens with `# type: ignore`: mypy sees no class there, only Any)
class PukaInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Traces every Puka client of the process (the OpenTelemetry instrumentor convention).

        PukaInstrumentor().instrument(tracer_provider=provider)   # spans from now on
        PukaInstrumentor().uninstrument()                          # and no more

    `instrument()` takes `tracer_provider` (default: the global one) and `body_size`: `True`
    adds `messaging.message.body.size` to every span (an opt-in attribute of the
    conventions). Instrumenting twice, or uninstrumenting what is not instrumented, logs a
    warning and does nothing (`BaseInstrumentor`; it is a singleton). The
    `opentelemetry-instrument` command finds it through the `opentelemetry_instrumentor` entry
    point `puka`.

    Code that runs inside `opentelemetry.instrumentation.utils.suppress_instrumentation()`
    publishes without a span or trace headers.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        """The package this instruments: puka-core (the engine both clients share)."""
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        body_size = kwargs.get("body_size", False)
        if not isinstance(body_size, bool):
            raise TypeError(f"instrument: body_size must be a bool, not {type(body_size).__name__}")
        _HOOK.tracer = trace.get_tracer(
            __name__, __version__, kwargs.get("tracer_provider"), schema_url=SCHEMA_URL
        )
        _HOOK.body_size = body_size
        hooks.install(_HOOK)

    def _uninstrument(self, **kwargs: Any) -> None:
        hooks.uninstall(_HOOK)


def context_of(message: Result) -> otel_context.Context:
    """The OpenTelemetry context to process a delivered `message` in.

    Its current span is the span made when the message arrived, so spans started in it are
    children of that span, in the publisher's trace:

        message = client.wait(consume)
        with tracer.start_as_current_span("handle order", context=context_of(message)):
            ...

    For a message that arrived while Puka was not instrumented, the publish's context carried
    by its headers if it has one, or else the current context.

    Raises:
        TypeError: `message` is not a message Puka delivered (a `puka.Result`).
    """
    if not isinstance(message, Result):
        refuse_type(message, "message", "context_of", "a message Puka delivered (a puka.Result)")
    kept = hooks.recall(_HOOK, message)
    if kept is not None:
        span, parent = kept  # (the parent: the publish's context, its baggage too)
        return trace.set_span_in_context(span, parent)
    headers = message.get("headers")
    if headers:
        return propagate.extract(headers, None, _GETTER)
    return otel_context.get_current()
