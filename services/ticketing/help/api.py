"""gRPC edge of the help centre: protobuf in, use cases, protobuf out."""

from __future__ import annotations

import asyncpg
import grpc
from support.ticketing.v1 import help_service_pb2 as pb
from support.ticketing.v1 import help_service_pb2_grpc as pb_grpc

from services.kit.db import DB_UNAVAILABLE_ERRORS
from services.kit.grpc_errors import Context, grpc_method
from services.ticketing.help import convert
from services.ticketing.help.domain import parse_article_id, parse_category, parse_locale
from services.ticketing.help.service import HelpService

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["HelpService"].full_name


class HelpApi(pb_grpc.HelpServiceServicer):
    def __init__(self, service: HelpService) -> None:
        self._service = service

    @grpc_method(DB_UNAVAILABLE_ERRORS)
    async def SearchArticles(self, request: pb.SearchArticlesRequest, context: Context) -> pb.SearchArticlesResponse:
        page = await self._service.search(
            query=request.query,
            locale=parse_locale(request.locale),
            category=parse_category(request.category),
            size=request.page_size,
            token=request.page_token,
        )
        return pb.SearchArticlesResponse(
            results=[convert.result_message(hit) for hit in page.hits],
            next_page_token=page.next_page_token,
            fallback_locale=page.fallback_locale.value if page.fallback_locale else "",
        )

    @grpc_method(DB_UNAVAILABLE_ERRORS)
    async def SuggestArticles(self, request: pb.SuggestArticlesRequest, context: Context) -> pb.SuggestArticlesResponse:
        hits = await self._service.suggest(
            subject=request.subject,
            description=request.description,
            locale=parse_locale(request.locale),
            category=parse_category(request.category),
            size=request.max_results,
        )
        return pb.SuggestArticlesResponse(results=[convert.result_message(hit) for hit in hits])

    @grpc_method(DB_UNAVAILABLE_ERRORS)
    async def GetArticle(self, request: pb.GetArticleRequest, context: Context) -> pb.GetArticleResponse:
        article = await self._service.get_article(parse_article_id(request.article_id))
        return pb.GetArticleResponse(article=convert.article_message(article))

    @grpc_method(DB_UNAVAILABLE_ERRORS)
    async def ListArticles(self, request: pb.ListArticlesRequest, context: Context) -> pb.ListArticlesResponse:
        articles, token = await self._service.list_articles(
            locale=parse_locale(request.locale),
            category=parse_category(request.category),
            include_unpublished=request.include_unpublished,
            size=request.page_size,
            token=request.page_token,
        )
        return pb.ListArticlesResponse(
            articles=[convert.article_message(article) for article in articles], next_page_token=token
        )

    @grpc_method(DB_UNAVAILABLE_ERRORS)
    async def CreateArticle(self, request: pb.CreateArticleRequest, context: Context) -> pb.CreateArticleResponse:
        article, created = await self._service.create_article(convert.new_article(request))
        return pb.CreateArticleResponse(article=convert.article_message(article), created=created)

    @grpc_method(DB_UNAVAILABLE_ERRORS)
    async def UpdateArticle(self, request: pb.UpdateArticleRequest, context: Context) -> pb.UpdateArticleResponse:
        article = await self._service.update_article(convert.article_update(request))
        return pb.UpdateArticleResponse(article=convert.article_message(article))

    @grpc_method(DB_UNAVAILABLE_ERRORS)
    async def ListSearchGaps(self, request: pb.ListSearchGapsRequest, context: Context) -> pb.ListSearchGapsResponse:
        gaps, token = await self._service.list_search_gaps(
            locale=parse_locale(request.locale), size=request.page_size, token=request.page_token
        )
        return pb.ListSearchGapsResponse(gaps=[convert.gap_message(gap) for gap in gaps], next_page_token=token)


def register(server: grpc.aio.Server, pool: asyncpg.Pool) -> None:
    """Add the help centre to a ticketing server; its full name is ``SERVICE_NAME``."""
    pb_grpc.add_HelpServiceServicer_to_server(HelpApi(HelpService(pool)), server)
