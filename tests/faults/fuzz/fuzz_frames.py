"""atheris target: the incremental frame reader, fed arbitrary bytes in arbitrary chunks.

Checks that `FrameReader` raises nothing but puka_spec's typed errors, never allocates past
`frame_max`, and reads a stream the same however it is split. Run by hand (see README.md).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["puka_spec"]):
    from puka_spec import AMQPError, FrameReader


def _read(reader: FrameReader) -> tuple[list[str], str | None]:
    frames: list[str] = []
    try:
        while (frame := reader.read_frame()) is not None:
            frames.append(repr(frame))
    except AMQPError as exc:
        return frames, type(exc).__name__
    return frames, None


def test_one_input(data: bytes) -> None:
    """One fuzz input: a frame_max, chunk sizes, then the stream."""
    fdp = atheris.FuzzedDataProvider(data)
    frame_max = fdp.ConsumeIntInRange(4096, 1 << 20)
    cuts = [fdp.ConsumeIntInRange(1, 64) for _ in range(fdp.ConsumeIntInRange(0, 16))]
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())

    whole = FrameReader(frame_max)
    whole.feed(stream)
    expected, expected_error = _read(whole)
    if whole.buffered > frame_max + 8:
        raise AssertionError(f"{whole.buffered} bytes buffered for frame_max {frame_max}")

    reader = FrameReader(frame_max)
    got: list[str] = []
    error = None
    pos = 0
    for cut in [*cuts, len(stream)]:
        reader.feed(stream[pos : pos + cut])
        pos += cut
        frames, error = _read(reader)
        got.extend(frames)
        if error is not None or pos >= len(stream):
            break
    if (got, error) != (expected, expected_error):
        raise AssertionError(f"split read {got, error} != whole read {expected, expected_error}")


def main() -> None:
    """Run the fuzzer (atheris takes libFuzzer's flags, e.g. -max_total_time=120)."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
