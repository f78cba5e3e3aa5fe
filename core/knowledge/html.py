"""HTML help-center pages as the Markdown the article reader takes (stdlib's parser: headings,
paragraphs, list items, table rows; scripts, styles, navigation and footers left out)."""

from __future__ import annotations

import re
from html.parser import HTMLParser


class _Markdown(HTMLParser):
    """HTML as the Markdown the article reader takes: headings, paragraphs, list items, table rows."""

    BLOCKS = frozenset({"p", "div", "li", "tr", "br", "section", "article", "ul", "ol", "table"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "nav", "footer", "head"):
            self.skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.out.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in self.BLOCKS:
            self.out.append("\n\n" if tag in ("p", "div", "section", "article", "table", "ul", "ol") else "\n")
            if tag == "li":
                self.out.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "nav", "footer", "head"):
            self.skip = max(0, self.skip - 1)
        elif re.fullmatch(r"h[1-6]", tag) or tag in ("p", "table"):
            self.out.append("\n\n")
        elif tag in ("td", "th"):
            self.out.append(" | ")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(re.sub(r"\s+", " ", data))


def html_to_markdown(html: str) -> str:
    parser = _Markdown()
    parser.feed(html)
    text = "".join(parser.out)
    return "\n".join(line.strip() for line in text.splitlines()).strip()
