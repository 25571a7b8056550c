"""puka-spec: AMQP 0-9-1 as RabbitMQ speaks it, generated from the specification.

No I/O and no state: methods with their encoders and decoders (`puka_spec.methods`), content
properties (`BasicProperties`), field tables (`puka_spec.table`), frames and an incremental frame
reader (`puka_spec.frames`), constants, and one exception class per reply code
(`puka_spec.exceptions`, under `PukaError`, the root of every Puka exception). Import it to
speak AMQP your own way; `puka` builds a client on it.

    >>> from puka_spec import FrameReader, encode_method_frame, methods
    >>> reader = FrameReader()
    >>> reader.feed(encode_method_frame(1, methods.QueueDeclare(queue="jobs", durable=True)))
    >>> frame = reader.read_frame()
    >>> frame.channel, frame.method.queue, frame.method.durable
    (1, 'jobs', True)
"""

from puka_spec import constants, methods
from puka_spec.__about__ import __version__
from puka_spec.exceptions import (
    ERRORS,
    AMQPError,
    EncodingError,
    HardError,
    PukaError,
    SoftError,
    UnsupportedProtocol,
    error_for,
)
from puka_spec.frames import (
    HEARTBEAT_FRAME,
    BodyFrame,
    ContentFrame,
    Frame,
    FrameReader,
    HeaderFrame,
    HeartbeatFrame,
    MethodFrame,
    decode_header,
    decode_method,
    encode_content,
    encode_content_after,
    encode_content_buffers,
    encode_header_frame,
    encode_method_frame,
    encode_method_frame_open,
)
from puka_spec.methods import METHODS, Method
from puka_spec.properties import BasicProperties
from puka_spec.table import (
    FieldArray,
    FieldTable,
    FieldValue,
    decode_array,
    decode_table,
    encode_array,
    encode_table,
)

__all__ = [
    "ERRORS",
    "HEARTBEAT_FRAME",
    "METHODS",
    "AMQPError",
    "BasicProperties",
    "BodyFrame",
    "ContentFrame",
    "EncodingError",
    "FieldArray",
    "FieldTable",
    "FieldValue",
    "Frame",
    "FrameReader",
    "HardError",
    "HeaderFrame",
    "HeartbeatFrame",
    "Method",
    "MethodFrame",
    "PukaError",
    "SoftError",
    "UnsupportedProtocol",
    "__version__",
    "constants",
    "decode_array",
    "decode_header",
    "decode_method",
    "decode_table",
    "encode_array",
    "encode_content",
    "encode_content_after",
    "encode_content_buffers",
    "encode_header_frame",
    "encode_method_frame",
    "encode_method_frame_open",
    "encode_table",
    "error_for",
    "methods",
]
