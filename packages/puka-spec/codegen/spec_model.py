"""Read the AMQP XML (plus Puka's overlay) into a small typed model for the templates."""

from __future__ import annotations

import keyword
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPEC_XML = HERE / "amqp0-9-1.stripped.extended.xml"
OVERLAY_XML = HERE / "rabbitmq-overlay.xml"

# AMQP wire types and what the generated code needs to know of each.
FIXED_TYPES = {"octet": "B", "short": "H", "long": "I", "longlong": "Q", "timestamp": "Q"}
PY_TYPES = {
    "octet": "int",
    "short": "int",
    "long": "int",
    "longlong": "int",
    "timestamp": "int",
    "bit": "bool",
    "shortstr": "str",
    "longstr": "bytes",
    "table": "FieldTable",
}
DEFAULTS = {
    "octet": "0",
    "short": "0",
    "long": "0",
    "longlong": "0",
    "timestamp": "0",
    "bit": "False",
    "shortstr": '""',
    "longstr": 'b""',
    "table": "None",
}
# Reply-code names that would shadow a Python builtin get an AMQP prefix.
EXCEPTION_NAME_OVERRIDES = {
    "syntax-error": "AMQPSyntaxError",
    "not-implemented": "AMQPNotImplemented",
}
# What usually causes each reply code, for the error reference (RabbitMQ's behaviour).
ERROR_CAUSES = {
    311: "A message body larger than the broker accepts.",
    312: "A mandatory publish matched no queue (returned with basic.return).",
    313: "An immediate publish found no consumer (RabbitMQ no longer supports immediate).",
    320: "The broker closed the connection: an operator (rabbitmqctl close_connection), "
    "a node shutdown or restart.",
    402: "The virtual host path is malformed.",
    403: "The user lacks permission for the operation, a wrong password (with "
    "authentication_failure_close), or a reserved name such as an 'amq.' prefix.",
    404: "The queue or exchange does not exist (passive declare, bind, consume, publish to a "
    "missing exchange).",
    405: "An exclusive queue owned by another connection, or a consumer exclusivity conflict.",
    406: "A redeclare with different arguments, an ack of an unknown delivery tag, an "
    "if-unused/if-empty delete that could not proceed, or a consumer ack timeout.",
    501: "A malformed frame: wrong frame-end octet, oversized frame, bad field encoding.",
    502: "A field value the peer could not parse.",
    503: "A method not allowed in the current state (for example on a closed channel).",
    504: "A frame on a channel that is not open, or past channel_max.",
    505: "A frame arrived out of order (content frames without their method, wrong class).",
    506: "The broker ran out of a resource (too many channels, memory).",
    530: "The operation is not allowed: most often a virtual host that does not exist or "
    "the user may not access.",
    540: "A method the peer does not implement.",
    541: "An internal error in the broker.",
}


def _py_name(name: str) -> str:
    ident = name.replace("-", "_")
    return ident + "_" if keyword.iskeyword(ident) else ident


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


@dataclass(frozen=True)
class Field:
    """One method or property field."""

    name: str  # the XML name, e.g. "no-wait"
    type: str  # the AMQP wire type, e.g. "bit"
    reserved: bool

    @property
    def py_name(self) -> str:
        return _py_name(self.name)

    @property
    def py_type(self) -> str:
        return PY_TYPES[self.type]

    @property
    def default(self) -> str:
        return DEFAULTS[self.type]


@dataclass
class Method:
    """One AMQP method."""

    class_name: str
    class_index: int
    name: str
    index: int
    synchronous: bool
    content: bool
    deprecated: bool
    responses: list[str]
    chassis: list[str]  # who receives it: "server", "client"
    fields: list[Field]

    @property
    def full_name(self) -> str:
        return f"{self.class_name}.{self.name}"

    @property
    def py_class(self) -> str:
        return _camel(self.class_name) + _camel(self.name)

    @property
    def key(self) -> int:
        return (self.class_index << 16) | self.method_index

    @property
    def method_index(self) -> int:
        return self.index

    @property
    def args(self) -> list[Field]:
        return [f for f in self.fields if not f.reserved]


@dataclass
class AmqpClass:
    """One AMQP class with its methods and (for basic) content properties."""

    name: str
    index: int
    methods: list[Method] = field(default_factory=list)
    properties: list[Field] = field(default_factory=list)

    @property
    def py_class(self) -> str:
        return _camel(self.name)


@dataclass(frozen=True)
class Constant:
    """A constant; reply codes carry their soft/hard class."""

    name: str
    value: int
    kind: str | None  # "soft-error", "hard-error" or None

    @property
    def py_name(self) -> str:
        return self.name.upper().replace("-", "_")

    @property
    def exception_name(self) -> str:
        return EXCEPTION_NAME_OVERRIDES.get(self.name, _camel(self.name))

    @property
    def cause(self) -> str:
        return ERROR_CAUSES.get(self.value, "")


@dataclass
class Spec:
    """The whole protocol as the templates see it."""

    major: int
    minor: int
    revision: int
    port: int
    constants: list[Constant]
    classes: list[AmqpClass]

    @property
    def methods(self) -> list[Method]:
        return [m for c in self.classes for m in c.methods]

    @property
    def errors(self) -> list[Constant]:
        return sorted((c for c in self.constants if c.kind), key=lambda c: c.value)

    def method(self, full_name: str) -> Method:
        for m in self.methods:
            if m.full_name == full_name:
                return m
        raise KeyError(full_name)


def _domains(root: ET.Element) -> dict[str, str]:
    return {d.attrib["name"]: d.attrib["type"] for d in root.iter("domain")}


def _field(elem: ET.Element, domains: dict[str, str]) -> Field:
    wire = elem.attrib.get("type") or domains[elem.attrib["domain"]]
    return Field(elem.attrib["name"], wire, elem.attrib.get("reserved") == "1")


def _method(cls: AmqpClass, elem: ET.Element, domains: dict[str, str]) -> Method:
    return Method(
        class_name=cls.name,
        class_index=cls.index,
        name=elem.attrib["name"],
        index=int(elem.attrib["index"]),
        synchronous=elem.attrib.get("synchronous") == "1",
        content=elem.attrib.get("content") == "1",
        deprecated=elem.attrib.get("deprecated") == "1",
        responses=[r.attrib["name"] for r in elem.findall("response")],
        chassis=[c.attrib["name"] for c in elem.findall("chassis")],
        fields=[_field(f, domains) for f in elem.findall("field")],
    )


# What an overlay <patch> may change in a method: these attributes (set or replaced), and these
# child elements (added). A method's fields are its wire format: changing them makes another method.
PATCH_ATTRIBUTES = ("synchronous", "content", "deprecated")
PATCH_CHILDREN = ("response", "chassis")


def _patch(cls: ET.Element, patch: ET.Element) -> None:
    """Apply an overlay `<patch method="name">` to that method of `cls` (an element of the spec)."""
    name = patch.attrib.get("method", "")
    where = f"overlay patch of {cls.attrib['name']}.{name}"
    target = next((m for m in cls.findall("method") if m.attrib["name"] == name), None)
    if target is None:
        raise ValueError(f"{where}: the specification has no such method")
    for key, value in patch.attrib.items():
        if key == "method":
            continue
        if key not in PATCH_ATTRIBUTES:
            raise ValueError(f"{where}: cannot patch {key!r} (only {', '.join(PATCH_ATTRIBUTES)})")
        target.set(key, value)
    for child in patch:
        if child.tag not in PATCH_CHILDREN:
            raise ValueError(
                f"{where}: cannot add <{child.tag}> (only {', '.join(PATCH_CHILDREN)})"
            )
        if any(c.get("name") == child.get("name") for c in target.findall(child.tag)):
            raise ValueError(f"{where}: it already has <{child.tag} name={child.get('name')!r}>")
        target.append(child)


def merge(root: ET.Element, overlay: ET.Element) -> set[str]:
    """Merge `overlay` into the specification `root`, in place; the classes given new methods.

    The overlay's `<constant>`s are added. In an overlay `<class>` (same name and index as the
    spec's), a `<method>` is a new method (its index must be free) and a `<patch method="name">`
    changes an existing one: its attributes among `PATCH_ATTRIBUTES` replace the method's, its
    `<response>` and `<chassis>` children are added to the method's.
    """
    root.extend(overlay.findall("constant"))
    classes = {c.attrib["name"]: c for c in root.findall("class")}
    grown = set()
    for c in overlay.findall("class"):
        cls = classes.get(c.attrib["name"])
        if cls is None:
            raise ValueError(f"overlay class {c.attrib['name']} is not in the specification")
        if int(cls.attrib["index"]) != int(c.attrib["index"]):
            raise ValueError(f"overlay class {c.attrib['name']} has index {c.attrib['index']}")
        known = {int(m.attrib["index"]) for m in cls.findall("method")}
        for m in c.findall("method"):
            if int(m.attrib["index"]) in known:
                full_name = f"{c.attrib['name']}.{m.attrib['name']}"
                raise ValueError(f"overlay method {full_name} reuses index {m.attrib['index']}")
            cls.append(m)
            grown.add(cls.attrib["name"])
        for patch in c.findall("patch"):
            _patch(cls, patch)
    return grown


def load(spec_xml: Path = SPEC_XML, overlay_xml: Path = OVERLAY_XML) -> Spec:
    """Parse the specification and merge the overlay into it."""
    root = ET.parse(spec_xml).getroot()  # noqa: S314 - our own vendored file
    overlay = ET.parse(overlay_xml).getroot()  # noqa: S314
    grown = merge(root, overlay)
    domains = _domains(root)
    constants = [
        Constant(c.attrib["name"], int(c.attrib["value"]), c.attrib.get("class"))
        for c in root.findall("constant")
    ]
    classes = []
    for c in root.findall("class"):
        cls = AmqpClass(c.attrib["name"], int(c.attrib["index"]))
        cls.properties = [_field(f, domains) for f in c.findall("field")]
        cls.methods = [_method(cls, m, domains) for m in c.findall("method")]
        if cls.name in grown:  # the overlay's methods among the spec's, in index order
            cls.methods.sort(key=lambda m: m.index)
        classes.append(cls)
    return Spec(
        major=int(root.attrib["major"]),
        minor=int(root.attrib["minor"]),
        revision=int(root.attrib["revision"]),
        port=int(root.attrib["port"]),
        constants=sorted(constants, key=lambda c: (c.kind is not None, c.value)),
        classes=sorted(classes, key=lambda c: c.index),
    )
