"""The documentation site builds with --strict, and renders in a browser, served or from files.

The site is built into a temporary folder (``mkdocs build --strict``, see ``docsite.py``), served
on loopback, and opened in headless Chromium (Debian's ``chromium`` package), both through the
server and straight from the files (``file://``, as a reader who opens ``site/index.html`` sees
it). Without Chromium, or without mkdocs and hatch, the tests are skipped, unless ``$CI`` is set:
then they fail.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import unquote, urlsplit

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
        "getting-started.html",
        "tutorials/rpc.html",
        "concepts/errors.html",
        "concepts/logging.html",
        "concepts/observability.html",
        "reference/api/puka.html",
        "reference/api/puka-opentelemetry.html",
        "reference/errors.html",
        "reference/cli.html",
        "reference/urls.html",
        "reference/changelogs.html",
        "library-authors/engine.html",
        "search/search_index.js",  # the index a page opened from file:// loads
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
    assert {"index.html", "tutorials/hello-world.html", "reference/errors.html"} <= locations
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


def test_every_link_names_a_file(built_site: Path) -> None:
    """Each link between pages names an HTML file of the site, never a folder: opened from
    file://, a folder shows as a listing, not as its index.html."""
    checked = 0
    for html in built_site.rglob("*.html"):
        if html.name == "404.html":  # a server's page for a missing path: links from the root
            continue
        text = html.read_text(encoding="utf-8")
        for href in re.findall(r'<a [^>]*href="([^"]*)"', text):
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or not parts.path:  # other hosts; #anchors
                continue
            target = (html.parent / unquote(parts.path)).resolve()
            where = f"{html.relative_to(built_site)}: {href}"
            assert target.is_relative_to(built_site.resolve()), f"{where} leaves the site"
            assert target.is_file(), f"{where} is not a file of the site"
            assert target.suffix == ".html" or "/assets/" in target.as_posix(), where
            checked += 1
    assert checked > 500  # the navigation alone links every page from every page


def test_site_loads_nothing_from_other_hosts(built_site: Path) -> None:
    """No script or style sheet from a CDN: the site works offline and from files (the offline
    plugin would add a CDN polyfill if mkdocs.yml did not name our vendored copy)."""
    for html in built_site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        urls = re.findall(r'<script\b[^>]*\bsrc="([^"]*)"', text)
        for tag in re.findall(r"<link\b[^>]*>", text):
            if 'rel="stylesheet"' in tag:
                urls += re.findall(r'\bhref="([^"]*)"', tag)
        assert urls, html
        for url in urls:
            assert not urlsplit(url).netloc, f"{html.relative_to(built_site)} loads {url}"


def test_home_page_renders(browser: str, base_url: str) -> None:
    dom = site.dump_dom(base_url)
    _check_page(dom, "Puka")
    assert "basic_consume" in dom  # the code (highlighted: split into spans)


def test_a_tutorial_renders(browser: str, base_url: str) -> None:
    dom = site.dump_dom(base_url + "tutorials/work-queues.html")
    _check_page(dom, "Work queues")
    assert "prefetch_count" in dom  # the code included from examples/tutorials/work_queues.py
    assert re.search(r"md-nav__link--active[^>]*>\s*(<[^>]+>\s*)*2\. Work queues", dom)


def test_error_reference_renders(browser: str, base_url: str) -> None:
    dom = site.dump_dom(base_url + "reference/errors.html")
    _check_page(dom, "Errors")
    cells = re.findall(r"<td[^>]*>(.*?)</td>", dom, re.DOTALL)
    text = [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]
    for code, cls in ERRORS.items():
        assert str(code) in text, f"reply code {code} missing"
        assert any(cell.startswith(cls.__name__) for cell in text), f"{cls.__name__} missing"


def test_pages_render_from_files(browser: str, built_site: Path) -> None:
    """Opened from file:// (``site/index.html`` in a file browser), a page runs its scripts and
    its top navigation leads to pages."""
    page = built_site / "tutorials" / "work-queues.html"
    dom = site.dump_dom(page.as_uri())
    _check_page(dom, "Work queues")
    tabs = re.findall(r'<a href="([^"]*)" class="md-tabs__link', dom)
    assert len(tabs) >= 6, tabs
    for href in tabs:
        assert (page.parent / href).resolve().is_file(), f"the tab link {href} is not a page"


def test_search_works_from_files(browser: str, built_site: Path) -> None:
    """Search from file:// finds pages: ``?q=`` opens the search with that query; the results
    come from search/search_index.js through the vendored worker shim."""
    dom = site.dump_dom((built_site / "index.html").as_uri() + "?q=PreconditionFailed")
    meta = re.search(r'class="md-search-result__meta"[^>]*>([^<]*)<', dom)
    assert meta is not None, "no search results panel"
    assert re.fullmatch(r"\d+ matching documents?", meta.group(1).strip()), meta.group(1)
    results = re.search(r'<ol class="md-search-result__list".*?</ol>', dom, re.DOTALL)
    assert results is not None, "the search found nothing"
    hrefs = re.findall(r'<a href="([^"]*)" class="md-search-result__link', results.group(0))
    assert hrefs, "the search found nothing"
    pages = set()
    for href in hrefs:
        parts = urlsplit(href)
        assert parts.scheme == "file", href
        path = Path(unquote(parts.path))
        assert path.is_file(), f"the result {href} is not a page"
        pages.add(path.relative_to(built_site.resolve()).as_posix())
    assert "reference/errors.html" in pages, pages


def test_home_page_screenshot(browser: str, base_url: str, tmp_path: Path) -> None:
    """Chromium can take the README's screenshot (``hatch run docs:screenshot`` refreshes it)."""
    output = tmp_path / "home.png"
    site.screenshot(base_url, output)
    data = output.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000
    assert site.SCREENSHOT.is_file(), "docs/assets/screenshot-home.png is missing"
