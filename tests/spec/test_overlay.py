"""The overlay: what it adds to the XML, and how a `<patch>` changes a method the XML has."""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from puka_spec import methods

CODEGEN = Path(__file__).resolve().parents[2] / "packages" / "puka-spec" / "codegen"


@pytest.fixture(scope="module")
def spec_model() -> Iterator[types.ModuleType]:
    """The generator's XML reader (`codegen/spec_model.py`, not an installed module)."""
    name = "spec_model_under_test"
    spec = importlib.util.spec_from_file_location(name, CODEGEN / "spec_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


def _load(spec_model: types.ModuleType, tmp_path: Path, classes: str) -> Any:
    """The spec merged with an overlay holding just `classes`."""
    overlay = tmp_path / "overlay.xml"
    overlay.write_text(f'<?xml version="1.0"?>\n<amqp-overlay>{classes}</amqp-overlay>\n')
    return spec_model.load(spec_model.SPEC_XML, overlay)


def _basic(body: str) -> str:
    return f'<class name="basic" index="60">{body}</class>'


def _patched(
    spec_model: types.ModuleType, tmp_path: Path, full_name: str, patch: str, attributes: str = ""
) -> Any:
    """Method `full_name` of the spec after a `<patch>` of it holding `patch`."""
    cls, _, name = full_name.partition(".")
    index = {"basic": 60, "queue": 50}[cls]
    overlay = f'<class name="{cls}" index="{index}"><patch method="{name}" {attributes}>{patch}'
    return _load(spec_model, tmp_path, overlay + "</patch></class>").method(full_name)


def test_the_overlay_gives_basic_recover_its_reply() -> None:
    """RabbitMQ answers basic.recover with recover-ok; the XML does not say so, the overlay does."""
    assert methods.BasicRecover.RESPONSES == (methods.BasicRecoverOk.KEY,)
    assert methods.BasicRecover.SYNCHRONOUS is False  # only the reply was patched


def test_a_patch_adds_a_response(spec_model: types.ModuleType, tmp_path: Path) -> None:
    plain = _load(spec_model, tmp_path, "")
    assert plain.method("basic.recover").responses == []
    recover = _patched(spec_model, tmp_path, "basic.recover", '<response name="recover-ok"/>')
    assert recover.responses == ["recover-ok"]
    assert recover.chassis == ["server"]  # the rest as the XML has it
    assert [f.name for f in recover.fields] == ["requeue"]
    assert not recover.synchronous


def test_a_patch_sets_attributes_and_adds_chassis(
    spec_model: types.ModuleType, tmp_path: Path
) -> None:
    chassis = '<chassis name="client" implement="MAY"/>'
    recover = _patched(
        spec_model, tmp_path, "basic.recover", chassis, 'synchronous="1" deprecated="1"'
    )
    assert recover.synchronous and recover.deprecated and not recover.content
    assert recover.chassis == ["server", "client"]


def test_a_patch_keeps_the_responses_the_xml_has(
    spec_model: types.ModuleType, tmp_path: Path
) -> None:
    declare = _patched(spec_model, tmp_path, "queue.declare", '<response name="delete-ok"/>')
    assert declare.responses == ["declare-ok", "delete-ok"]


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        pytest.param(
            '<patch method="no-such"/>',
            "basic.no-such: the specification has no such method",
            id="no-such-method",
        ),
        pytest.param('<patch method="recover" index="1"/>', "cannot patch 'index'", id="index"),
        pytest.param('<patch method="recover" name="x"/>', "cannot patch 'name'", id="name"),
        pytest.param(
            '<patch method="recover"><field name="x" domain="bit"/></patch>',
            "cannot add <field>",
            id="field",
        ),
        pytest.param(
            '<patch method="recover"><chassis name="server" implement="MUST"/></patch>',
            "it already has <chassis name='server'>",
            id="chassis-it-has",
        ),
        pytest.param(
            '<patch method="recover"><response name="recover-ok"/>'
            '<response name="recover-ok"/></patch>',
            "it already has <response name='recover-ok'>",
            id="response-twice",
        ),
    ],
)
def test_a_patch_that_cannot_apply_is_refused(
    spec_model: types.ModuleType, tmp_path: Path, patch: str, message: str
) -> None:
    with pytest.raises(ValueError, match="overlay patch of basic") as caught:
        _load(spec_model, tmp_path, _basic(patch))
    assert message in str(caught.value)


def test_a_new_method_may_not_reuse_an_index(spec_model: types.ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"overlay method basic\.again reuses index 110"):
        _load(spec_model, tmp_path, _basic('<method name="again" index="110"/>'))


def test_an_overlay_class_must_be_the_specs(spec_model: types.ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="overlay class basic has index 61"):
        _load(spec_model, tmp_path, '<class name="basic" index="61"/>')
    with pytest.raises(ValueError, match="overlay class stream is not in the specification"):
        _load(spec_model, tmp_path, '<class name="stream" index="70"/>')
