"""The public API is what `surface.json` records: a change to it is made on purpose."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.api.surface import PUBLIC_MODULES, surface

RECORD = json.loads((Path(__file__).parent / "surface.json").read_text())


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_public_api_is_unchanged(module: str) -> None:
    assert surface(module) == RECORD[module], (
        f"{module}'s public API changed: if on purpose, run "
        "`python -m tests.api.surface > tests/api/surface.json` and say why in the commit"
    )
