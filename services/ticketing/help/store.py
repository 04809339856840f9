"""SQL for help articles, search statistics and deflection attempts."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from services.kit.db import Connection
from services.ticketing.domain import Category
from services.ticketing.help.domain import Article, ArticleContent, CatalogVersion, Locale, SearchGap

_COLUMNS = "id, locale, slug, title, body, category, tags, published, version, created_at, updated_at"


async def catalog_version(conn: Connection) -> CatalogVersion:
    row = await conn.fetchrow("SELECT count(*) AS articles, coalesce(sum(version), 0) AS versions FROM help_articles")
    assert row is not None
    return CatalogVersion(articles=row["articles"], versions=int(row["versions"]))


async def published_articles(conn: Connection) -> list[Article]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM help_articles WHERE published ORDER BY slug, locale")
    return [_article(row) for row in rows]


async def insert_article(conn: Connection, article: Article, request_id: str, fingerprint: str) -> Article | None:
    """Insert, or return None when the request_id, or the locale and slug, are taken."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO help_articles (request_id, request_fingerprint, {_COLUMNS})
        VALUES ($1, $13, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        ON CONFLICT DO NOTHING
        RETURNING {_COLUMNS}
        """,
        request_id,
        article.id,
        article.locale.value,
        article.slug,
        article.title,
        article.body,
        article.category.value,
        list(article.tags),
        article.published,
        article.version,
        article.created_at,
        article.updated_at,
        fingerprint,
    )
    return _article(row) if row else None


async def article_by_request_id(conn: Connection, request_id: str) -> tuple[Article, str] | None:
    """The article ``request_id`` created and the fingerprint of that request."""
    row = await conn.fetchrow(
        f"SELECT request_fingerprint, {_COLUMNS} FROM help_articles WHERE request_id = $1", request_id
    )
    return (_article(row), row["request_fingerprint"]) if row else None


async def slug_taken(conn: Connection, locale: Locale, slug: str) -> bool:
    taken: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM help_articles WHERE locale = $1 AND slug = $2)", locale.value, slug
    )
    return taken


async def get_article(conn: Connection, article_id: uuid.UUID) -> Article | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM help_articles WHERE id = $1", article_id)
    return _article(row) if row else None


async def update_article(
    conn: Connection, article_id: uuid.UUID, content: ArticleContent, expected_version: int, now: datetime
) -> Article | None:
    """Replace the editable fields; None when the article is absent or not at ``expected_version`` (0: any)."""
    row = await conn.fetchrow(
        f"""
        UPDATE help_articles
        SET title = $3, body = $4, category = $5, tags = $6, published = $7, version = version + 1,
            updated_at = greatest($8, updated_at)
        WHERE id = $1 AND ($2 = 0 OR version = $2)
        RETURNING {_COLUMNS}
        """,
        article_id,
        expected_version,
        content.title,
        content.body,
        content.category.value,
        list(content.tags),
        content.published,
        now,
    )
    return _article(row) if row else None


async def list_articles(
    conn: Connection,
    *,
    locale: Locale | None,
    category: Category | None,
    include_unpublished: bool,
    after: tuple[str, str] | None,
    limit: int,
) -> list[Article]:
    """Ordered by (slug, locale) bytewise (the same order on any database collation), after the key ``after``."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM help_articles
        WHERE ($1::text IS NULL OR locale = $1)
          AND ($2::text IS NULL OR category = $2)
          AND ($3 OR published)
          AND ($4::text IS NULL
               OR (slug COLLATE "C", locale COLLATE "C") > ($4::text COLLATE "C", $5::text COLLATE "C"))
        ORDER BY slug COLLATE "C", locale COLLATE "C"
        LIMIT $6
        """,
        locale.value if locale else None,
        category.value if category else None,
        include_unpublished,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [_article(row) for row in rows]


async def record_search(conn: Connection, query: str, locale: Locale, hits: int, now: datetime) -> None:
    await conn.execute(
        """
        INSERT INTO help_searches (query, locale, hits, search_count, first_at, last_at)
        VALUES ($1, $2, $3, 1, $4, $4)
        ON CONFLICT (query, locale) DO UPDATE
        SET hits = EXCLUDED.hits,
            search_count = help_searches.search_count + 1,
            last_at = greatest(help_searches.last_at, EXCLUDED.last_at)
        """,
        query,
        locale.value,
        hits,
        now,
    )


async def list_search_gaps(
    conn: Connection, *, locale: Locale | None, after: tuple[int, str, str] | None, limit: int
) -> list[SearchGap]:
    """Zero-hit queries, most searched first, then by query and locale; keyset after ``after``."""
    rows = await conn.fetch(
        """
        SELECT query, locale, search_count, first_at, last_at FROM help_searches
        WHERE hits = 0
          AND ($1::text IS NULL OR locale = $1)
          AND ($2::bigint IS NULL
               OR (-search_count, query COLLATE "C", locale COLLATE "C")
                  > (-$2::bigint, $3::text COLLATE "C", $4::text COLLATE "C"))
        ORDER BY search_count DESC, query COLLATE "C", locale COLLATE "C"
        LIMIT $5
        """,
        locale.value if locale else None,
        after[0] if after else None,
        after[1] if after else None,
        after[2] if after else None,
        limit,
    )
    return [
        SearchGap(
            query=row["query"],
            locale=Locale(row["locale"]),
            search_count=row["search_count"],
            first_at=row["first_at"],
            last_at=row["last_at"],
        )
        for row in rows
    ]


async def record_suggestion(conn: Connection, locale: Locale, category: Category | None, slugs: list[str]) -> None:
    await conn.execute(
        "INSERT INTO help_suggestions (locale, category, article_slugs) VALUES ($1, $2, $3)",
        locale.value,
        category.value if category else None,
        slugs,
    )


def _article(row: asyncpg.Record) -> Article:
    return Article(
        id=row["id"],
        locale=Locale(row["locale"]),
        slug=row["slug"],
        title=row["title"],
        body=row["body"],
        category=Category(row["category"]),
        tags=tuple(row["tags"]),
        published=row["published"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
