"""Constants of AMQP 0-9-1: frame types, sizes and reply codes."""

# Generated from the specification into _gen_constants.py; this module is its public name.
from puka_spec import _gen_constants
from puka_spec._gen_constants import *  # noqa: F403

__all__ = _gen_constants.__all__
