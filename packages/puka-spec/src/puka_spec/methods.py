"""Every AMQP 0-9-1 method as a class, with unrolled encode and decode.

Each class knows its ids, name, whether it is synchronous, whether content follows it, which
methods answer it, and its fields. `encode()` returns the method payload (class id, method id,
arguments); `decode(buf, offset)` reads the arguments at `offset` (just past the method id) and
returns the method and the offset after it. Use `puka_spec.frames.decode_method` to decode a
whole payload with errors translated into `FrameError`.
"""

# Generated from the specification into _gen_methods.py; this module is its public name.
from puka_spec import _gen_methods
from puka_spec._gen_methods import *  # noqa: F403

__all__ = _gen_methods.__all__
