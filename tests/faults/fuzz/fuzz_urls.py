"""atheris target: the connection URL parser.

`parse_url`/`parse_urls` return parameters or raise `InvalidURL` (a `ValueError`), nothing else,
and the password never shows in the error, `str()` or `repr()`. Run by hand (see README.md).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["puka"]):
    from puka.urls import InvalidURL, parse_url, parse_urls

SECRET = "Zq9sEcReT"


def test_one_input(data: bytes) -> None:
    """One fuzz input: a URL tail after a user with a known password, or a whole URL list."""
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 2)
    text = fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes())
    if SECRET in text:
        return  # then it may rightly show up (as a host, say)
    if mode == 0:
        url = f"amqp://user:{SECRET}@{text}"
    elif mode == 1:
        url = f"amqps://user:{SECRET}@host/{text}"
    else:
        url = text
    try:
        params = parse_urls(url) if mode == 2 else [parse_url(url)]
    except InvalidURL as exc:
        if mode != 2 and SECRET in str(exc):
            raise AssertionError(f"the password leaks into {exc}") from None
        return
    for p in params:
        shown = str(p) + repr(p) + p.redacted_url()
        if mode != 2 and SECRET in shown:
            raise AssertionError(f"the password leaks into {shown}")


def main() -> None:
    """Run the fuzzer (atheris takes libFuzzer's flags, e.g. -max_total_time=120)."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
