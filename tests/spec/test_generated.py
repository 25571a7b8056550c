"""The generated modules against the XML they came from, independently re-read here."""

from __future__ import annotations

import keyword
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from puka_spec import constants, exceptions, methods
from puka_spec.frames import FrameReader, decode_method, encode_method_frame

ROOT = Path(__file__).resolve().parents[2]
CODEGEN = ROOT / "packages" / "puka-spec" / "codegen"
SPEC = ET.parse(CODEGEN / "amqp0-9-1.stripped.extended.xml").getroot()
OVERLAY = ET.parse(CODEGEN / "rabbitmq-overlay.xml").getroot()
DOMAINS = {d.get("name"): d.get("type") for d in SPEC.iter("domain")}


def _camel(name: str) -> str:
    return "".join(p.capitalize() for p in name.split("-"))


def _py(name: str) -> str:
    ident = name.replace("-", "_")
    return ident + "_" if keyword.iskeyword(ident) else ident


def _xml_methods() -> list[tuple[ET.Element, ET.Element]]:
    out = []
    for root in (SPEC, OVERLAY):
        for cls in root.findall("class"):
            out.extend((cls, m) for m in cls.findall("method"))
    return out


def _patches() -> dict[tuple[str, str], list[ET.Element]]:
    """The overlay's <patch> elements, by the (class, method) each changes."""
    out: dict[tuple[str, str], list[ET.Element]] = {}
    for cls in OVERLAY.findall("class"):
        for patch in cls.findall("patch"):
            out.setdefault((cls.get("name", ""), patch.get("method", "")), []).append(patch)
    return out


XML_METHODS = _xml_methods()
PATCHES = _patches()
SAMPLES: dict[str, Any] = {
    "octet": 0xAB,
    "short": 0xBEEF,
    "long": 0xDEADBEEF,
    "longlong": 0x0123456789ABCDEF,
    "timestamp": 1_700_000_000,
    "shortstr": "naïve-ключ",
    "longstr": b"\x00\xffbinary",
    "table": {"x-match": "all", "n": 1, "nested": {"deep": [1, "two", None]}},
}


def _ids(item: tuple[ET.Element, ET.Element]) -> str:
    return f"{item[0].get('name')}.{item[1].get('name')}"


def test_every_xml_method_is_generated_and_nothing_else() -> None:
    keys = {(int(c.get("index", 0)) << 16) | int(m.get("index", 0)) for c, m in XML_METHODS}
    assert set(methods.METHODS) == keys
    assert (
        len(methods.METHODS) == 64
    )  # 60 in RabbitMQ's XML + blocked, unblocked, update-secret(-ok)


@pytest.mark.parametrize("item", XML_METHODS, ids=_ids)
def test_method_matches_xml(item: tuple[ET.Element, ET.Element]) -> None:
    cls_x, m_x = item
    cls = getattr(methods, _camel(cls_x.get("name", "")) + _camel(m_x.get("name", "")))
    assert int(cls_x.get("index", -1)) == cls.CLASS_ID
    assert int(m_x.get("index", -1)) == cls.METHOD_ID
    assert cls.KEY == (cls.CLASS_ID << 16) | cls.METHOD_ID
    assert f"{cls_x.get('name')}.{m_x.get('name')}" == cls.NAME
    patches = PATCHES.get((cls_x.get("name", ""), m_x.get("name", "")), [])
    attributes = dict(m_x.attrib)  # with the overlay's patches applied
    for patch in patches:
        attributes.update((k, v) for k, v in patch.attrib.items() if k != "method")
    assert (attributes.get("synchronous") == "1") == cls.SYNCHRONOUS
    assert (attributes.get("content") == "1") == cls.HAS_CONTENT
    responses = [r.get("name") for e in (m_x, *patches) for r in e.findall("response")]
    assert [methods.METHODS[k].NAME for k in cls.RESPONSES] == [
        f"{cls_x.get('name')}.{r}" for r in responses
    ]
    fields = [
        (_py(f.get("name", "")), f.get("type") or DOMAINS[f.get("domain")])
        for f in m_x.findall("field")
        if f.get("reserved") != "1"
    ]
    assert list(cls.FIELDS) == fields


def _sample(cls: type[methods.Method]) -> methods.Method:
    kwargs: dict[str, Any] = {}
    for i, (name, kind) in enumerate(cls.FIELDS):
        kwargs[name] = (i % 2 == 0) if kind == "bit" else SAMPLES[kind]
    return cls(**kwargs)


@pytest.mark.parametrize("cls", list(methods.METHODS.values()), ids=lambda c: c.NAME)
def test_round_trip_every_method(cls: type[methods.Method]) -> None:
    method = _sample(cls)
    payload = method.encode()
    assert payload[:4] == cls.CLASS_ID.to_bytes(2, "big") + cls.METHOD_ID.to_bytes(2, "big")
    decoded = decode_method(payload)
    assert type(decoded) is cls
    assert decoded == method
    # with trailing bytes the decoder stops where the arguments end
    again, end = cls.decode(payload + b"trailing", 4)
    assert again == method
    assert end == len(payload)


def test_field_order_on_the_wire() -> None:
    """queue.bind: reserved short, queue, exchange, routing key, no-wait bit, arguments."""
    payload = methods.QueueBind(queue="q", exchange="ex", routing_key="rk", no_wait=True).encode()
    assert payload == (
        b"\x00\x32\x00\x14" + b"\x00\x00" + b"\x01q" + b"\x02ex" + b"\x02rk" + b"\x01" + b"\0\0\0\0"
    )


def test_bits_pack_low_bit_first_in_one_octet() -> None:
    payload = methods.QueueDeclare(queue="", durable=True, auto_delete=True).encode()
    # reserved short, empty name, then one octet: passive=1 durable=2 exclusive=4 auto_delete=8
    assert payload[4:] == b"\x00\x00\x00" + bytes([2 | 8]) + b"\0\0\0\0"


def test_whole_frames_decode_one_byte_at_a_time() -> None:
    frames = b"".join(encode_method_frame(7, _sample(c)) for c in methods.METHODS.values())
    reader = FrameReader(frame_max=131072)
    got = []
    for i in range(len(frames)):
        reader.feed(frames[i : i + 1])
        while (frame := reader.read_frame()) is not None:
            got.append(frame)
    assert [type(f.method) for f in got] == list(methods.METHODS.values())  # type: ignore[union-attr]
    assert all(f.channel == 7 for f in got)
    assert reader.buffered == 0


def test_constants_and_reply_codes_match_xml() -> None:
    xml_constants = {
        c.get("name"): (int(c.get("value", -1)), c.get("class"))
        for root in (SPEC, OVERLAY)
        for c in root.findall("constant")
    }
    for name, (value, kind) in xml_constants.items():
        assert getattr(constants, name.upper().replace("-", "_")) == value
        if kind:
            exc = exceptions.ERRORS[value]
            assert exc.reply_code == value
            assert issubclass(
                exc, exceptions.SoftError if kind == "soft-error" else exceptions.HardError
            )
    assert constants.PROTOCOL_HEADER == b"AMQP\x00\x00\x09\x01"
    assert constants.NO_ROUTE == 312


def test_overlay_ids_are_rabbitmqs() -> None:
    assert methods.ConnectionBlocked.KEY == (10 << 16) | 60
    assert methods.ConnectionUnblocked.KEY == (10 << 16) | 61
    assert methods.ConnectionUpdateSecret.KEY == (10 << 16) | 70
    assert methods.ConnectionUpdateSecretOk.KEY == (10 << 16) | 71
    assert methods.ConnectionBlocked.FIELDS == (("reason", "shortstr"),)
    assert methods.ConnectionUpdateSecret.FIELDS == (
        ("new_secret", "longstr"),
        ("reason", "shortstr"),
    )


def test_generated_code_is_not_stale() -> None:
    result = subprocess.run(
        [sys.executable, str(CODEGEN / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
