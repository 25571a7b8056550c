"""The documentation site builds with --strict, and renders in a browser.

The site is built into a temporary folder (``mkdocs build --strict``, see ``docsite.py``), served
on loopback, and opened in headless Chromium (Debian's ``chromium`` package). Without Chromium,
or without mkdocs and hatch, the tests are skipped, unless ``$CI`` is set: then they fail.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from puka_spec.exceptions import ERRORS

from tests.docs import docsite as site

pytestmark = pytest.mark.timeout(1200)  # the first build may create the docs environment


def _missing(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: a missing tool is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site_dir = tmp_path_factory.mktemp("site")
    try:
        done = site.build(site_dir)
    except site.ToolMissing as error:
        _missing(f"cannot build the documentation: {error}")
    assert done.returncode == 0, (
        f"mkdocs build --strict failed ({done.returncode})\n{done.stdout}\n{done.stderr}"
    )
    return site_dir


@pytest.fixture(scope="module")
def base_url(built_site: Path) -> Iterator[str]:
    with site.serve(built_site) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> str:
    executable = site.chromium()
    if executable is None:
        _missing("chromium is not installed (apt-get install -y chromium): no browser checks")
    return executable


def test_build_is_strict_and_complete(built_site: Path) -> None:
    """The build passed --strict (the fixture); every page of the nav is there."""
    for page in (
        "index.html",
        "getting-started/index.html",
        "tutorials/rpc/index.html",
        "concepts/errors/index.html",
        "reference/api/puka/index.html",
        "reference/errors/index.html",
        "reference/cli/index.html",
        "reference/urls/index.html",
        "reference/changelogs/index.html",
        "library-authors/engine/index.html",
    ):
        assert (built_site / page).is_file(), page
    for html in built_site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        assert "--8&lt;--" not in text, f"{html}: a snippet was not included"
        assert "<!-- puka:" not in text, f"{html}: a generation marker was left in"


def test_search_index_has_the_pages(base_url: str) -> None:
    with urllib.request.urlopen(base_url + "search/search_index.json", timeout=10) as response:
        index = json.load(response)
    locations = {doc["location"] for doc in index["docs"]}
    assert {"", "tutorials/hello-world/", "reference/errors/"} <= locations
    assert any("PreconditionFailed" in doc["text"] for doc in index["docs"])


def _check_page(dom: str, title: str) -> None:
    # the theme's scripts ran: they turn <html class="no-js"> into class="... js"
    html_tag = re.search(r"<html[^>]*>", dom)
    assert html_tag is not None
    assert "no-js" not in html_tag.group(0), "the page's scripts did not run"
    assert re.search(r'class="md-search__input"', dom), "no search box"
    assert re.search(r'class="md-tabs__link[^"]*"[^>]*>\s*Tutorials', dom), "no top navigation"
    assert 'class="md-nav__link' in dom, "no side navigation"
    heading = re.search(r"<h1[^>]*>(.*?)</h1>", dom, re.DOTALL)
    assert heading is not None, "no title"
    assert title in re.sub(r"<[^>]+>", "", heading.group(1))


def test_home_page_renders(browser: str, base_url: str) -> None:
    dom = site.dump_dom(base_url)
    _check_page(dom, "Puka")
    assert "basic_consume" in dom  # the code (highlighted: split into spans)


def test_a_tutorial_renders(browser: str, base_url: str) -> None:
    dom = site.dump_dom(base_url + "tutorials/work-queues/")
    _check_page(dom, "Work queues")
    assert "prefetch_count" in dom  # the code included from examples/tutorials/work_queues.py
    assert re.search(r"md-nav__link--active[^>]*>\s*(<[^>]+>\s*)*2\. Work queues", dom)


def test_error_reference_renders(browser: str, base_url: str) -> None:
    dom = site.dump_dom(base_url + "reference/errors/")
    _check_page(dom, "Errors")
    cells = re.findall(r"<td[^>]*>(.*?)</td>", dom, re.DOTALL)
    text = [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]
    for code, cls in ERRORS.items():
        assert str(code) in text, f"reply code {code} missing"
        assert any(cell.startswith(cls.__name__) for cell in text), f"{cls.__name__} missing"


def test_home_page_screenshot(browser: str, base_url: str, tmp_path: Path) -> None:
    """Chromium can take the README's screenshot (``hatch run docs:screenshot`` refreshes it)."""
    output = tmp_path / "home.png"
    site.screenshot(base_url, output)
    data = output.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000
    assert site.SCREENSHOT.is_file(), "docs/assets/screenshot-home.png is missing"
