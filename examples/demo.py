"""Demo: puka-spec encodes a publish and decodes it back (replaced by a broker demo with puka-core)."""

from puka_spec import BasicProperties, FrameReader, encode_content, methods

wire = encode_content(
    1,
    methods.BasicPublish(exchange="", routing_key="demo"),
    BasicProperties(content_type="text/plain", headers={"greeting": "cześć"}),
    "Hello, Puka!".encode(),
    frame_max=131072,
)
print(f"{len(wire)} bytes on the wire: {wire[:24].hex(' ')} …")
reader = FrameReader(131072)
reader.feed(wire)
while (frame := reader.read_frame()) is not None:
    print(frame)
