"""Help centre articles and queries: pure rules, no I/O."""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.kit.errors import InvalidArgument, NotFound
from services.ticketing.domain import Category


class Locale(StrEnum):
    ZH = "zh"
    EN = "en"


MAX_SLUG = 80
MAX_TITLE = 200
MAX_BODY = 20_000
MAX_TAGS = 20
MAX_TAG = 40
MAX_QUERY = 500
# Long enough for any query worth counting; longer texts are pasted messages, not queries.
MAX_STORED_QUERY = 200
MAX_REQUEST_ID = 300
MAX_SUGGEST_SUBJECT = 200
MAX_SUGGEST_DESCRIPTION = 10_000

DEFAULT_SEARCH_PAGE = 10
MAX_SEARCH_PAGE = 50
DEFAULT_SUGGESTIONS = 3
MAX_SUGGESTIONS = 10

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_LANGUAGE_TAG = re.compile(r"^([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*$")


def invalid(field_name: str, rule: str, code: str = "invalid_argument") -> InvalidArgument:
    return InvalidArgument(code, f"{field_name}: {rule}", field=field_name)


def parse_locale(tag: str, field_name: str = "locale") -> Locale | None:
    """``zh``/``en`` from a BCP 47 tag (``zh-CN``, ``en_US`` too); None for an empty tag."""
    if not tag:
        return None
    match = _LANGUAGE_TAG.match(tag.strip())
    if match is not None:
        try:
            return Locale(match.group(1).lower())
        except ValueError:
            pass
    raise invalid(field_name, "unsupported; use zh or en", code="unsupported_locale")


def required_locale(tag: str) -> Locale:
    locale = parse_locale(tag)
    if locale is None:
        raise invalid("locale", "required (zh or en)")
    return locale


def parse_category(name: str, field_name: str = "category") -> Category | None:
    if not name:
        return None
    try:
        return Category(name)
    except ValueError:
        raise invalid(field_name, f"unknown category {name!r}") from None


def has_cjk(text: str) -> bool:
    return any(is_cjk(c) for c in text)


def is_cjk(char: str) -> bool:
    """True for characters of scripts written without spaces (Han, kana, hangul)."""
    code = ord(char)
    return (
        0x3400 <= code <= 0x4DBF  # CJK extension A
        or 0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0x20000 <= code <= 0x3FFFF  # extensions B and later
        or 0x3040 <= code <= 0x30FF  # kana: no spaces either
        or 0xAC00 <= code <= 0xD7AF  # hangul syllables
    )


def normalize_query(text: str) -> str:
    """What a query is counted as: NFKC, trimmed, lowercased, runs of whitespace collapsed to one space."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return " ".join(folded.split())[:MAX_STORED_QUERY]


def locale_for(requested: Locale | None, text: str) -> Locale:
    """The requested locale; without one the text's script decides: Chinese characters mean zh."""
    return requested or (Locale.ZH if has_cjk(text) else Locale.EN)


def other_locale(locale: Locale) -> Locale:
    return Locale.EN if locale is Locale.ZH else Locale.ZH


def bounded(requested: int, default: int, maximum: int, field_name: str) -> int:
    if requested < 0:
        raise invalid(field_name, "must not be negative")
    return min(requested or default, maximum)


def clean_tags(tags: list[str]) -> tuple[str, ...]:
    """Trimmed, lowercased, de-duplicated in order; empty entries dropped."""
    seen: dict[str, None] = {}
    for tag in tags:
        value = " ".join(unicodedata.normalize("NFKC", tag).lower().split())
        if not value:
            continue
        if len(value) > MAX_TAG:
            raise invalid("tags", f"each at most {MAX_TAG} characters")
        seen.setdefault(value, None)
    if len(seen) > MAX_TAGS:
        raise invalid("tags", f"at most {MAX_TAGS}")
    return tuple(seen)


def _text(value: str, field_name: str, maximum: int) -> str:
    text = value.strip()
    if not text or len(text) > maximum:
        raise invalid(field_name, f"required, at most {maximum} characters")
    return text


@dataclass(frozen=True, slots=True)
class ArticleContent:
    """The editable part of an article, validated and trimmed."""

    title: str
    body: str
    category: Category
    tags: tuple[str, ...]
    published: bool

    @classmethod
    def parse(cls, *, title: str, body: str, category: str, tags: list[str], published: bool) -> ArticleContent:
        parsed = parse_category(category)
        if parsed is None:
            raise invalid("category", "required")
        return cls(
            title=_text(title, "title", MAX_TITLE),
            body=_text(body, "body", MAX_BODY),
            category=parsed,
            tags=clean_tags(tags),
            published=published,
        )


@dataclass(frozen=True, slots=True)
class NewArticle:
    request_id: str
    locale: Locale
    slug: str
    content: ArticleContent

    @classmethod
    def parse(cls, *, request_id: str, locale: str, slug: str, content: ArticleContent) -> NewArticle:
        if not request_id or len(request_id) > MAX_REQUEST_ID:
            raise invalid("request_id", f"required, at most {MAX_REQUEST_ID} characters")
        if len(slug) > MAX_SLUG or not _SLUG.match(slug):
            raise invalid("slug", f"lowercase letters, digits and single hyphens, at most {MAX_SLUG} characters")
        return cls(request_id=request_id, locale=required_locale(locale), slug=slug, content=content)


@dataclass(frozen=True, slots=True)
class ArticleUpdate:
    article_id: uuid.UUID
    content: ArticleContent
    # 0: apply whatever the current version is.
    expected_version: int


@dataclass(frozen=True, slots=True)
class Article:
    id: uuid.UUID
    locale: Locale
    slug: str
    title: str
    body: str
    category: Category
    tags: tuple[str, ...]
    published: bool
    version: int
    created_at: datetime
    updated_at: datetime


def parse_article_id(value: str) -> uuid.UUID:
    """An article id; anything that is not one is simply not found."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("article_not_found", f"no article {value[:64]!r}") from None


@dataclass(frozen=True, slots=True)
class SearchGap:
    query: str
    locale: Locale
    search_count: int
    first_at: datetime
    last_at: datetime


@dataclass(frozen=True, slots=True)
class CatalogVersion:
    """Changes whenever any article is created or updated: every update bumps one article's version."""

    articles: int
    versions: int


def draft_article(new: NewArticle, article_id: uuid.UUID, now: datetime) -> Article:
    content = new.content
    return Article(
        id=article_id,
        locale=new.locale,
        slug=new.slug,
        title=content.title,
        body=content.body,
        category=content.category,
        tags=content.tags,
        published=content.published,
        version=1,
        created_at=now,
        updated_at=now,
    )
