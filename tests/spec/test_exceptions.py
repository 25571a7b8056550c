"""One exception class per reply code, named as a Python user expects."""

from __future__ import annotations

import pickle

import puka_spec
import pytest
from puka_spec import exceptions as exc

EXPECTED = {
    311: ("ContentTooLarge", True),
    312: ("NoRoute", True),
    313: ("NoConsumers", True),
    320: ("ConnectionForced", False),
    402: ("InvalidPath", False),
    403: ("AccessRefused", True),
    404: ("NotFound", True),
    405: ("ResourceLocked", True),
    406: ("PreconditionFailed", True),
    501: ("FrameError", False),
    502: ("AMQPSyntaxError", False),
    503: ("CommandInvalid", False),
    504: ("ChannelError", False),
    505: ("UnexpectedFrame", False),
    506: ("ResourceError", False),
    530: ("NotAllowed", False),
    540: ("AMQPNotImplemented", False),
    541: ("InternalError", False),
}


@pytest.mark.parametrize(("code", "expected"), EXPECTED.items())
def test_class_per_code(code: int, expected: tuple[str, bool]) -> None:
    name, soft = expected
    cls = getattr(exc, name)
    assert exc.ERRORS[code] is cls
    assert cls.reply_code == code
    assert cls.soft is soft
    assert issubclass(cls, exc.SoftError if soft else exc.HardError)
    err = exc.error_for(code, "TEXT - detail", 50, 10)
    assert type(err) is cls
    assert (err.reply_code, err.reply_text, err.class_id, err.method_id) == (
        code,
        "TEXT - detail",
        50,
        10,
    )
    assert str(err) == f"{code} TEXT - detail (method 50.10)"


def test_no_builtin_is_shadowed() -> None:
    import builtins

    assert not set(exc.__all__) & set(dir(builtins))
    assert set(exc.ERRORS) == set(EXPECTED)


def test_unknown_codes_keep_their_code() -> None:
    soft = exc.error_for(499, "odd")
    hard = exc.error_for(599, "odder")
    assert isinstance(soft, exc.SoftError)
    assert isinstance(hard, exc.HardError)
    assert (soft.reply_code, hard.reply_code) == (499, 599)


def test_errors_pickle_and_repr() -> None:
    err = exc.PreconditionFailed("PRECONDITION_FAILED - not equivalent", 50, 10)
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is exc.PreconditionFailed
    assert again.reply_text == err.reply_text
    assert repr(err) == "PreconditionFailed('PRECONDITION_FAILED - not equivalent', 50, 10)"
    assert isinstance(err, puka_spec.AMQPError)


def test_encoding_error_is_a_value_error() -> None:
    with pytest.raises(exc.EncodingError, match="longer than 255"):
        puka_spec.methods.QueueDeclare(queue="x" * 256).encode()
    assert issubclass(exc.EncodingError, ValueError)
    # 128 two-byte characters: 256 bytes, so too long although only 128 characters
    with pytest.raises(exc.EncodingError):
        puka_spec.methods.QueueDeclare(queue="é" * 128).encode()
    assert puka_spec.methods.QueueDeclare(queue="é" * 127).encode()


def test_one_root() -> None:
    """`PukaError` is the root of every exception of the spec (and of `puka`'s)."""
    assert issubclass(exc.AMQPError, exc.PukaError)
    assert issubclass(exc.EncodingError, exc.PukaError)
    assert issubclass(exc.EncodingError, ValueError)
    for cls in exc.ERRORS.values():
        assert issubclass(cls, exc.PukaError)
    assert type(exc.error_for(599)).__mro__.count(exc.PukaError) == 1
    assert puka_spec.PukaError is exc.PukaError
