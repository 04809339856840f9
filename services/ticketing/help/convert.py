"""Translation between the help centre's domain and its protobuf contract."""

from __future__ import annotations

from support.ticketing.v1 import help_pb2, help_service_pb2

from services.kit.proto_enums import timestamp
from services.ticketing.help.domain import (
    Article,
    ArticleContent,
    ArticleUpdate,
    NewArticle,
    SearchGap,
    invalid,
    parse_article_id,
)
from services.ticketing.help.search import Hit


def article_message(article: Article) -> help_pb2.HelpArticle:
    return help_pb2.HelpArticle(
        id=str(article.id),
        locale=article.locale.value,
        slug=article.slug,
        title=article.title,
        body=article.body,
        category=article.category.value,
        tags=list(article.tags),
        published=article.published,
        version=article.version,
        create_time=timestamp(article.created_at),
        update_time=timestamp(article.updated_at),
    )


def result_message(hit: Hit) -> help_pb2.HelpSearchResult:
    return help_pb2.HelpSearchResult(article=article_message(hit.article), score=hit.score, snippet=hit.snippet)


def gap_message(gap: SearchGap) -> help_pb2.SearchGap:
    return help_pb2.SearchGap(
        query=gap.query,
        locale=gap.locale.value,
        search_count=gap.search_count,
        first_search_time=timestamp(gap.first_at),
        last_search_time=timestamp(gap.last_at),
    )


def new_article(request: help_service_pb2.CreateArticleRequest) -> NewArticle:
    content = ArticleContent.parse(
        title=request.title,
        body=request.body,
        category=request.category,
        tags=list(request.tags),
        published=request.published,
    )
    return NewArticle.parse(request_id=request.request_id, locale=request.locale, slug=request.slug, content=content)


def article_update(request: help_service_pb2.UpdateArticleRequest) -> ArticleUpdate:
    article_id = parse_article_id(request.article_id)
    if request.expected_version < 0:
        raise invalid("expected_version", "must not be negative")
    content = ArticleContent.parse(
        title=request.title,
        body=request.body,
        category=request.category,
        tags=list(request.tags),
        published=request.published,
    )
    return ArticleUpdate(article_id=article_id, content=content, expected_version=request.expected_version)
