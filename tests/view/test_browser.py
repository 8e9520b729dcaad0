"""The page in real browsers, every test in each engine: what the class sees on the projector."""

from __future__ import annotations

import pytest

from tests.host.fixtures import StartServer
from tests.view.conftest import Browser, StartView, held_clients, wait_page

pytestmark = pytest.mark.browser

ROWS = """return [...document.querySelectorAll('section.server[data-model="fork"] .proc')]
  .map(r => [r.dataset.role, r.dataset.state, +r.dataset.listen, +r.dataset.connected]);"""
CLIENTS = """const c = document.querySelector('section.server[data-model="select"] [data-clients]');
  return c ? [+c.dataset.clients, c.textContent] : null;"""


def test_the_page_shows_twenty_children_then_none(
    server_factory: StartServer, view_factory: StartView, browser: Browser
) -> None:
    server = server_factory("fork")
    view = view_factory(("fork-server", server.port))
    browser.get(view.url + "/")
    with held_clients(server.port, 20):
        rows = wait_page(browser, ROWS, lambda r: len(r) == 21)
        assert rows[0][0] == "parent" and rows[0][2] == 1
        assert all(r[0] == "child" and r[2] == 0 and r[3] == 1 for r in rows[1:]), rows
    wait_page(browser, ROWS, lambda r: len(r) == 1)


def test_the_page_shows_zombies(
    server_factory: StartServer, view_factory: StartView, browser: Browser
) -> None:
    server = server_factory("fork", "--no-reap")
    view = view_factory(("fork-server", server.port))
    browser.get(view.url + "/")
    with held_clients(server.port, 3):
        pass
    rows = wait_page(browser, ROWS, lambda r: len(r) == 4 and all(x[1] == "zombie" for x in r[1:]))
    assert all(x[0] == "zombie" for x in rows[1:])
    text = browser.text("section.server")
    assert "ZOMBIE" in text and "BREAK-IT --no-reap" in text, "a text label, not colour alone"


def test_the_select_panel_counts_its_clients(
    server_factory: StartServer, view_factory: StartView, browser: Browser
) -> None:
    server = server_factory("select")
    view = view_factory(("select-server", server.port))
    browser.get(view.url + "/")
    with held_clients(server.port, 5):
        _count, text = wait_page(browser, CLIENTS, lambda c: c is not None and c[0] == 5)
        assert "FD_SETSIZE 1024" in text
