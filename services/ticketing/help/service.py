"""Help centre use cases: search, suggestions, articles and search gaps.

Search runs in process over an index of the published articles (there are hundreds at most). Every search
first reads the catalogue's version, one cheap aggregate, and rebuilds the index when another replica (or
this one) changed an article, so all replicas answer from current articles without any messaging.

Customers paste secrets everywhere, search boxes included: a query is redacted before it is searched,
counted or stored, and never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from services.kit import idempotency, idempotency_store
from services.kit.db import Connection
from services.kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from services.kit.pagination import decode_token, encode_token, page_size
from services.ticketing.domain import Category
from services.ticketing.help import store
from services.ticketing.help.domain import (
    DEFAULT_SEARCH_PAGE,
    DEFAULT_SUGGESTIONS,
    MAX_QUERY,
    MAX_SEARCH_PAGE,
    MAX_STORED_QUERY,
    MAX_SUGGEST_DESCRIPTION,
    MAX_SUGGEST_SUBJECT,
    MAX_SUGGESTIONS,
    Article,
    ArticleUpdate,
    CatalogVersion,
    Locale,
    NewArticle,
    SearchGap,
    bounded,
    draft_article,
    invalid,
    locale_for,
    normalize_query,
)
from services.ticketing.help.search import HelpIndex, Hit
from services.ticketing.metrics import redact

# Scope of CreateArticle's in-flight claim (see services.kit.idempotency_store).
CLAIM_SCOPE = "help_article"


@dataclass(frozen=True, slots=True)
class SearchPage:
    hits: list[Hit]
    next_page_token: str
    fallback_locale: Locale | None


def _not_found(article_id: object) -> NotFound:
    return NotFound("article_not_found", f"no article {str(article_id)[:64]!r}")


def _bad_token() -> InvalidArgument:
    return InvalidArgument("invalid_page_token", "page_token: not a token from a previous page", field="page_token")


class HelpService:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._index = HelpIndex([])
        self._index_version: CatalogVersion | None = None
        self._rebuilding = asyncio.Lock()

    async def _current_index(self, conn: Connection) -> HelpIndex:
        version = await store.catalog_version(conn)
        if version == self._index_version:
            return self._index
        async with self._rebuilding:
            if version != self._index_version:
                # Read after the version: a change committed in between only causes one more rebuild later.
                self._index = HelpIndex(await store.published_articles(conn))
                self._index_version = version
        return self._index

    async def search(
        self, *, query: str, locale: Locale | None, category: Category | None, size: int, token: str
    ) -> SearchPage:
        """One page of ranked results. Only a query's first page is counted, so paging is not a new search."""
        if len(query) > MAX_QUERY:
            raise invalid("query", f"at most {MAX_QUERY} characters")
        normalized = normalize_query(redact(query).text)
        if not normalized:
            raise invalid("query", "required")
        searched = locale_for(locale, normalized)
        limit = bounded(size, DEFAULT_SEARCH_PAGE, MAX_SEARCH_PAGE, "page_size")
        fingerprint = hashlib.sha256(f"{normalized}\0{searched}\0{category or ''}".encode()).hexdigest()[:16]
        offset = _search_offset(token, fingerprint)
        async with self._pool.acquire() as conn:
            index = await self._current_index(conn)
            outcome = index.search(normalized, searched, category=category)
            if offset == 0:
                await store.record_search(
                    conn, normalized[:MAX_STORED_QUERY], searched, outcome.requested_locale_hits, _now()
                )
        hits = outcome.page(offset, limit)
        more = offset + limit < len(outcome.ranked)
        next_token = encode_token({"o": offset + limit, "f": fingerprint}) if more else ""
        return SearchPage(hits=hits, next_page_token=next_token, fallback_locale=outcome.fallback_locale)

    async def suggest(
        self, *, subject: str, description: str, locale: Locale | None, category: Category | None, size: int
    ) -> list[Hit]:
        """Articles that may answer a ticket before it is opened; the attempt is recorded without its text."""
        if len(subject) > MAX_SUGGEST_SUBJECT:
            raise invalid("subject", f"at most {MAX_SUGGEST_SUBJECT} characters")
        if len(description) > MAX_SUGGEST_DESCRIPTION:
            raise invalid("description", f"at most {MAX_SUGGEST_DESCRIPTION} characters")
        if not (subject.strip() or description.strip()):
            raise invalid("subject", "a subject or a description is required")
        # Redacted first: a pasted recovery phrase must not steer ranking by its words, and its token
        # ("recovery phrase") rightly brings up the article on securing the account.
        subject, description = redact(subject).text, redact(description).text
        limit = bounded(size, DEFAULT_SUGGESTIONS, MAX_SUGGESTIONS, "max_results")
        chosen = locale_for(locale, subject + description)
        async with self._pool.acquire() as conn:
            index = await self._current_index(conn)
            hits = index.suggest(subject, description, chosen, category=category, limit=limit)
            await store.record_suggestion(conn, chosen, category, [hit.article.slug for hit in hits])
        return hits

    async def get_article(self, article_id: uuid.UUID) -> Article:
        async with self._pool.acquire() as conn:
            article = await store.get_article(conn, article_id)
        if article is None:
            raise _not_found(article_id)
        return article

    async def list_articles(
        self,
        *,
        locale: Locale | None,
        category: Category | None,
        include_unpublished: bool,
        size: int,
        token: str,
    ) -> tuple[list[Article], str]:
        limit = page_size(size)
        cursor = decode_token(token)
        after: tuple[str, str] | None = None
        if cursor is not None:
            slug, cursor_locale = cursor.get("s"), cursor.get("l")
            if not isinstance(slug, str) or not isinstance(cursor_locale, str):
                raise _bad_token()
            after = (slug, cursor_locale)
        async with self._pool.acquire() as conn:
            articles = await store.list_articles(
                conn,
                locale=locale,
                category=category,
                include_unpublished=include_unpublished,
                after=after,
                limit=limit + 1,
            )
        if len(articles) <= limit:
            return articles, ""
        last = articles[limit - 1]
        return articles[:limit], encode_token({"s": last.slug, "l": last.locale.value})

    async def create_article(self, new: NewArticle) -> tuple[Article, bool]:
        """Create; a retry with the same request_id returns the original and ``created=False``.

        The same request_id with other content is ``idempotency_key_reused``; while another call with it is
        still being served, ``idempotency_key_in_flight``.
        """
        fingerprint = idempotency.fingerprint(new, exclude=("request_id",))
        candidate = draft_article(new, uuid.uuid4(), _now())
        async with self._pool.acquire() as conn, conn.transaction():
            if not await idempotency_store.claim(conn, CLAIM_SCOPE, new.request_id):
                raise idempotency.key_in_flight()
            earlier = await store.article_by_request_id(conn, new.request_id)
            if earlier is None:
                article = await store.insert_article(conn, candidate, new.request_id, fingerprint)
                if article is not None:
                    return article, True
                earlier = await store.article_by_request_id(conn, new.request_id)
            if earlier is not None:
                existing, stored = earlier
                idempotency.check_replay(stored, fingerprint, "an article")
                return existing, False
            if await store.slug_taken(conn, new.locale, new.slug):
                raise AlreadyExists(
                    "article_slug_taken", f"an article {new.slug!r} already exists in {new.locale}", field="slug"
                )
            # The conflicting insert rolled back after all; rare, and safe to retry.
            raise asyncpg.SerializationError("concurrent create of the same article")

    async def update_article(self, update: ArticleUpdate) -> Article:
        async with self._pool.acquire() as conn, conn.transaction():
            article = await store.update_article(
                conn, update.article_id, update.content, update.expected_version, _now()
            )
            if article is not None:
                return article
            current = await store.get_article(conn, update.article_id)
        if current is None:
            raise _not_found(update.article_id)
        raise FailedPrecondition(
            "article_version_mismatch",
            f"the article is at version {current.version}, not {update.expected_version}",
            current_version=str(current.version),
        )

    async def list_search_gaps(self, *, locale: Locale | None, size: int, token: str) -> tuple[list[SearchGap], str]:
        limit = page_size(size)
        cursor = decode_token(token)
        after: tuple[int, str, str] | None = None
        if cursor is not None:
            count, query, gap_locale = cursor.get("c"), cursor.get("q"), cursor.get("l")
            if not isinstance(count, int) or not isinstance(query, str) or not isinstance(gap_locale, str):
                raise _bad_token()
            after = (count, query, gap_locale)
        async with self._pool.acquire() as conn:
            gaps = await store.list_search_gaps(conn, locale=locale, after=after, limit=limit + 1)
        if len(gaps) <= limit:
            return gaps, ""
        last = gaps[limit - 1]
        return gaps[:limit], encode_token({"c": last.search_count, "q": last.query, "l": last.locale.value})


def _search_offset(token: str, fingerprint: str) -> int:
    cursor = decode_token(token)
    if cursor is None:
        return 0
    offset = cursor.get("o")
    # A token belongs to one query, locale and category; reusing it for another would skip results.
    if cursor.get("f") != fingerprint or not isinstance(offset, int) or offset <= 0:
        raise _bad_token()
    return offset


def _now() -> datetime:
    return datetime.now(UTC)
