"""Knowledge sources as text: files read into documents (articles split into passages that keep
their heading path, curated Q&A entries), and the text helpers retrieval needs (CJK bigrams for the
full-text index, sentences). Pure: no database, no model."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.knowledge.html import html_to_markdown

ARTICLES = {".md", ".markdown", ".txt", ".html", ".htm"}
CURATED = {".jsonl", ".csv"}
PASSAGE_CHARS = 900  # paragraphs of one section are merged up to about this size
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])|\n+")


class SourceError(ValueError):
    """A file that cannot be imported, with the reason (nothing of it is imported)."""


@dataclass(frozen=True)
class Passage:
    heading: str  # the heading path, "Title > Section"
    text: str


@dataclass(frozen=True)
class Document:
    """An article (its passages) or a curated Q&A entry (`question`, answered word for word)."""

    source: str  # what identifies it across imports: the file, and an entry's id within a Q&A file
    kind: str  # article | qa
    title: str
    passages: tuple[Passage, ...]
    url: str = ""
    question: str = ""
    answer: str = ""
    digest: str = field(default="", compare=False)


def read(path: Path) -> list[Document]:
    """The documents of one file (raises SourceError: binary, empty, broken lines, no title...)."""
    suffix = path.suffix.lower()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read it: {exc.strerror}") from None
    if b"\x00" in raw[:8192]:
        raise SourceError("a binary file, not text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SourceError("not UTF-8 text") from None
    if not text.strip():
        raise SourceError("empty")
    if suffix in CURATED:
        return curated(text, str(path), suffix)
    if suffix not in ARTICLES:
        raise SourceError(f"not a knowledge file ({', '.join(sorted(ARTICLES | CURATED))})")
    if suffix in (".html", ".htm"):
        text = html_to_markdown(text)
    return [article(text, str(path), fallback_title=path.stem.replace("-", " ").replace("_", " "))]


def files(paths: list[Path]) -> Iterator[Path]:
    """The files under the given paths (directories recursively, hidden entries skipped)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not any(
                part.startswith(".") for part in p.relative_to(path).parts))  # fmt: skip
        else:
            yield path


def article(text: str, source: str, fallback_title: str = "", url: str = "") -> Document:
    """A Markdown (or plain) article: `# Title` (else the first line), sections by heading, their
    paragraphs merged into passages of about PASSAGE_CHARS, each with its heading path."""
    lines = text.strip().splitlines()
    title = fallback_title
    if lines and lines[0].startswith("# "):
        title, lines = lines[0][2:].strip(), lines[1:]
    elif lines and not fallback_title:
        title, lines = lines[0].strip(), lines[1:]
    path, blocks, passages = [title], list[str](), list[Passage]()

    def flush() -> None:
        chunk: list[str] = []
        for block in [*blocks, ""]:
            if block and sum(map(len, chunk)) + len(block) <= PASSAGE_CHARS:
                chunk.append(block)
                continue
            if chunk:
                passages.append(Passage(" > ".join(p for p in path if p), "\n\n".join(chunk)))
            chunk = [block] if block else []
        blocks.clear()

    for block in re.split(r"\n\s*\n", "\n".join(lines)):
        block = block.strip()
        if heading := re.match(r"^(#{2,6})\s+(.*)", block):
            flush()
            level = len(heading.group(1)) - 1
            path[level:] = [heading.group(2).strip()]
            block = block[heading.end() :].strip()
        if block:
            blocks.append(block)
    flush()
    if not passages:
        raise SourceError("no text besides the title")
    body = "\n\n".join(p.text for p in passages)
    return Document(source, "article", title or "Untitled", tuple(passages), url, digest=digest(title, body, url))


def curated(text: str, source: str, suffix: str) -> list[Document]:
    """Q&A entries: JSON lines or CSV with `question` and `answer` (optional `id`, `url`)."""
    rows: list[dict[str, object]] = []
    if suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
    else:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise SourceError(f"line {n} is not valid JSON") from None
            if not isinstance(row, dict):
                raise SourceError(f"line {n} is not a JSON object")
            rows.append(row)
    documents, seen = [], set()
    for n, row in enumerate(rows, 1):
        question, answer = str(row.get("question") or "").strip(), str(row.get("answer") or "").strip()
        if not question or not answer:
            raise SourceError(f"entry {n} needs a non-empty 'question' and 'answer'")
        key = str(row.get("id") or n)
        if key in seen:
            raise SourceError(f"entry {n}: the id {key!r} is used twice")
        seen.add(key)
        url = str(row.get("url") or "")
        documents.append(qa(question, answer, f"{source}#{key}", url))
    if not documents:
        raise SourceError("no entries")
    return documents


def qa(question: str, answer: str, source: str, url: str = "") -> Document:  # a curated entry
    return Document(source, "qa", question, (Passage(question, answer),), url, question, answer,
                    digest=digest(question, answer, url))  # fmt: skip


def digest(*parts: str) -> str:  # a document's content hash: re-importing it unchanged changes nothing
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


def index_text(text: str) -> str:
    """Text as the full-text index reads it: lower case, and each run of CJK characters also as its
    overlapping bigrams (CJK has no spaces between words: a bigram index finds them without a
    segmenter, as Lucene's CJK analyzer does)."""

    def bigrams(match: re.Match[str]) -> str:
        run = match.group(0)
        return " " + " ".join(run[i : i + 2] for i in range(max(1, len(run) - 1))) + " "

    return CJK.sub(bigrams, text.lower())


def terms(text: str, limit: int | None = 40) -> list[str]:
    """The words of a text for the full-text index (short English function words left out), at most
    `limit` of them (a query's; None: all, as for the text a question is compared with)."""
    words = re.findall(r"\w+", index_text(text))
    return list(dict.fromkeys(w for w in words if (len(w) > 2 or CJK.match(w)) and w not in STOPWORDS))[:limit]


def sentences(text: str) -> list[str]:
    """A passage's sentences, list items and table rows (a row read with its header: "City bike —
    Range: 30-55 miles"), for answers built from the source's own words."""
    plain = re.sub(r"\*\*|__|`", "", tables_as_text(text))
    parts = [re.sub(r"^(\d+[.)]|[-*•])\s+", "", p.strip()) for p in SENTENCE.split(plain) if p and p.strip()]
    return [p.strip() for p in parts if len(p.strip()) > 3]


def tables_as_text(text: str) -> str:
    """Markdown table rows as lines that read on their own, each cell named by its column's header."""
    out, header = [], None
    for line in text.splitlines():
        if not line.strip().startswith("|"):
            out.append(line)
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
            continue
        if header is None:
            header = cells
            continue
        named = [f"{h}: {c}" if h else c for h, c in zip(header[1:], cells[1:], strict=False) if c]
        out.append(f"{cells[0]} — {'; '.join(named)}." if named else cells[0])
    return "\n".join(out)


_STOPWORDS = (
    "the and for are but not you your yours can could would should will with this that these those from have has "
    "had was were what when where which who whom why how does did doing into onto about just than then them they "
    "their there here our ours out all any some get got its it's i'm i've i'd ive dont don't im also very really "
    "please hello thanks thank hey need want know like "
)
STOPWORDS = frozenset(_STOPWORDS.split())
