"""Content properties: the header frame that precedes a message body.

`BasicProperties` holds the 14 properties of class ``basic``; `encode()` writes the
property flags and the properties that are set (not `None`); `decode(buf, offset)` reads them back.
"""

# Generated from the specification into _gen_properties.py; this module is its public name.
from puka_spec import _gen_properties
from puka_spec._gen_properties import *  # noqa: F403

__all__ = _gen_properties.__all__
