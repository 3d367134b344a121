"""Reading the server-rendered console (not a test module).

A small DOM over ``html.parser`` (no third-party HTML library is a project dependency),
and the two things every page test does: log in through the form and pick the CSRF token
out of the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response

from tests.conftest import PASSWORD

CITY_NAME = "东莞市"
VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)


def squash(text: str) -> str:
    """Whitespace as a reader sees it: runs collapse to one space, ends trimmed."""
    return " ".join(text.split())


@dataclass
class Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def text(self) -> str:
        return squash(self._raw_text())

    def _raw_text(self) -> str:
        if self.tag == "br":
            return "\n"
        inner = "".join(c if isinstance(c, str) else c._raw_text() for c in self.children)
        # A tag (span.tag) is an inline-block with margins: a reader sees it as its own word.
        return f" {inner} " if "tag" in self.classes else inner

    def iter(self) -> list[Node]:
        found: list[Node] = []
        for child in self.children:
            if isinstance(child, Node):
                found.append(child)
                found.extend(child.iter())
        return found

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag)
            and (cls is None or cls in n.classes)
            and all(n.attrs.get(k.rstrip("_")) == v for k, v in attrs.items())
        ]

    def one(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        """The single element that matches (fails the test if there are none or several)."""
        found = self.find_all(tag, cls, **attrs)
        assert len(found) == 1, f"expected one <{tag} class={cls} {attrs}>, found {len(found)}"
        return found[0]

    def texts(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[str]:
        return [n.text for n in self.find_all(tag, cls, **attrs)]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document")
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v if v is not None else "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


@dataclass
class Page:
    """A rendered page and the parts of the shell every page has."""

    response: Response
    dom: Node

    @classmethod
    def of(cls, response: Response) -> Page:
        assert response.headers["content-type"].startswith("text/html"), response.headers
        return cls(response, parse(response.text))

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def title(self) -> str:
        return self.dom.one("title").text

    @property
    def h1(self) -> str:
        return self.dom.one("h1").text

    @property
    def nav(self) -> list[str]:
        navs = self.dom.find_all("nav", "mainnav")
        return navs[0].texts("a") if navs else []

    @property
    def active_nav(self) -> list[str]:
        navs = self.dom.find_all("nav", "mainnav")
        return navs[0].texts("a", "active") if navs else []

    @property
    def flashes(self) -> list[str]:
        return self.dom.texts("div", "flash")

    @property
    def tiles(self) -> list[str]:
        return [t.one("b").text for t in self.dom.find_all("a", "tile")]

    @property
    def csrf(self) -> str:
        tokens = {n.attrs["value"] for n in self.dom.find_all("input", name="csrf_token")}
        assert len(tokens) == 1, tokens
        return tokens.pop()

    @property
    def error_message(self) -> str:
        return self.dom.one("section", "error-page").one("p", "big").text

    @property
    def error_list(self) -> list[str]:
        lists = self.dom.one("section", "error-page").find_all("ul", "errors")
        return lists[0].texts("li") if lists else []

    def definitions(self) -> dict[str, str]:
        """The ``<dl class="kv">`` of the page as {term: description}."""
        dl = self.dom.one("dl", "kv")
        terms, descs = dl.texts("dt"), dl.texts("dd")
        assert len(terms) == len(descs)
        return dict(zip(terms, descs, strict=True))

    def selected(self, select_name: str) -> list[str]:
        select = self.dom.one("select", name=select_name)
        return [o.text for o in select.find_all("option") if "selected" in o.attrs]

    def checked(self, input_name: str) -> list[str]:
        return [
            n.attrs.get("value", "on")
            for n in self.dom.find_all("input", name=input_name)
            if "checked" in n.attrs
        ]

    def value(self, input_name: str) -> str:
        return self.dom.one("input", name=input_name).attrs.get("value", "")


def full_title(title: str) -> str:
    return f"{title} · 政数平台 · {CITY_NAME}"


def get(client: TestClient, path: str) -> Page:
    return Page.of(client.get(path, follow_redirects=False))


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Log in through the form (replacing any session the client held); the CSRF token."""
    response = client.post(
        "/login",
        data={"username": username, "password": password, "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/"
    home = get(client, "/")
    assert home.status == 200
    return home.csrf


def post(client: TestClient, path: str, data: dict[str, Any]) -> Response:
    """Submit a form as the browser would, without following the redirect."""
    response: Response = client.post(path, data=data, follow_redirects=False)
    return response
