"""``/v1/help``: the FAQ. Search and read articles, suggestions before a ticket, editing, and search gaps.

- Anyone signed in reads published articles; a draft is the same 404 as a missing article to everyone but
  admins, who write the articles.
- ``GET /v1/help/articles`` searches when ``q`` is given and lists otherwise; both answer the same page shape
  (``score`` and ``snippet`` are null in a list).
- ``POST /v1/help/suggestions`` is a query with a body (so a ticket's text never lands in a URL or an access
  log); it creates nothing and takes no Idempotency-Key.
- ``POST /v1/help/articles`` takes ``Idempotency-Key`` as every creating POST does (``services.gateway.idempotency``).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Response

from services.gateway.auth import ANY_ROLE, require_roles
from services.gateway.clients import ServiceClients
from services.gateway.deps import get_clients
from services.gateway.idempotency import IdempotencyKey, creating_responses, request_id_for, reused_key_is_422
from services.gateway.openapi import problem_responses
from services.gateway.principal import Principal, Role
from services.gateway.problems import FieldError, ProblemError
from services.gateway.routes.paging import PageSize, PageToken
from services.gateway.schemas import (
    HELP_ARTICLE_ID_PATTERN,
    MAX_HELP_ARTICLE_ID,
    MAX_HELP_QUERY,
    Category,
    HelpArticleIn,
    HelpArticleOut,
    HelpArticlePage,
    HelpArticleReplaceIn,
    HelpSuggestionsIn,
    HelpSuggestionsOut,
    SearchGapPage,
)

router = APIRouter(prefix="/v1/help", tags=["help"])

ArticleIdPath = Annotated[
    str,
    Path(min_length=1, max_length=MAX_HELP_ARTICLE_ID, pattern=HELP_ARTICLE_ID_PATTERN, description="Article id."),
]
LocaleQuery = Annotated[
    str | None,
    Query(
        max_length=35,
        pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$",
        description="zh or en (regional tags such as zh-CN are accepted).",
    ),
]


def article_not_found() -> ProblemError:
    return ProblemError(404, "article_not_found", "Article not found.")


@router.get(
    "/articles",
    summary="Search or list help articles",
    responses=problem_responses(400, 401, 403, 422, 503),
)
async def list_articles(
    principal: Annotated[Principal, Depends(require_roles(*ANY_ROLE))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    q: Annotated[
        str | None,
        Query(
            max_length=MAX_HELP_QUERY,
            description="Search words, Chinese or English. Without it (or blank), articles are listed by slug.",
        ),
    ] = None,
    locale: LocaleQuery = None,
    category: Category | None = None,
    include_unpublished: Annotated[bool, Query(description="Admins only; listing only.")] = False,
    page_size: PageSize = None,
    page_token: PageToken = None,
) -> HelpArticlePage:
    if include_unpublished and principal.role is not Role.ADMIN:
        raise ProblemError(403, "forbidden", "Only admins may see unpublished articles.")
    if q is not None and q.strip():
        return await clients.search_help_articles(
            query=q, locale=locale, category=category, page_size=page_size, page_token=page_token
        )
    return await clients.list_help_articles(
        locale=locale,
        category=category,
        include_unpublished=include_unpublished,
        page_size=page_size,
        page_token=page_token,
    )


@router.get(
    "/articles/{article_id}",
    summary="Read a help article",
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def get_article(
    article_id: ArticleIdPath,
    principal: Annotated[Principal, Depends(require_roles(*ANY_ROLE))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> HelpArticleOut:
    article = await clients.get_help_article(article_id)
    if not article.published and principal.role is not Role.ADMIN:
        raise article_not_found()
    return article


@router.post(
    "/suggestions",
    summary="Articles that may answer a ticket before it is opened",
    responses=problem_responses(400, 401, 403, 413, 422, 503),
)
async def suggest_articles(
    body: HelpSuggestionsIn,
    _principal: Annotated[Principal, Depends(require_roles(*ANY_ROLE))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> HelpSuggestionsOut:
    if not (body.subject or body.description):
        raise ProblemError(
            422,
            "validation_failed",
            "A subject or a description is required; see errors.",
            errors=[FieldError(field="subject", location="body", code="missing", message="Subject or description")],
        )
    return await clients.suggest_help_articles(body)


@router.post(
    "/articles",
    status_code=201,
    summary="Create a help article",
    response_description="The article was created; `Location` names it.",
    responses=creating_responses(
        HelpArticleOut,
        "the original article",
        400,
        401,
        403,
        413,
        503,
        location="Path of the article.",
        conflicts="`article_slug_taken`: an article with this slug exists in this locale",
    ),
)
async def create_article(
    body: HelpArticleIn,
    response: Response,
    principal: Annotated[Principal, Depends(require_roles(Role.ADMIN))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    idempotency_key: IdempotencyKey = None,
) -> HelpArticleOut:
    with reused_key_is_422():
        article, created = await clients.create_help_article(
            body, request_id=request_id_for(principal, idempotency_key)
        )
    response.headers["Location"] = f"/v1/help/articles/{quote(article.id, safe='')}"
    response.status_code = 201 if created else 200
    return article


@router.put(
    "/articles/{article_id}",
    summary="Replace a help article's editable fields",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
async def replace_article(
    article_id: ArticleIdPath,
    body: HelpArticleReplaceIn,
    _principal: Annotated[Principal, Depends(require_roles(Role.ADMIN))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> HelpArticleOut:
    return await clients.update_help_article(article_id, body)


@router.get(
    "/search-gaps",
    summary="What customers searched for and did not find",
    responses=problem_responses(400, 401, 403, 422, 503),
)
async def list_search_gaps(
    _principal: Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.SUPERVISOR))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    locale: LocaleQuery = None,
    page_size: PageSize = None,
    page_token: PageToken = None,
) -> SearchGapPage:
    return await clients.list_help_search_gaps(locale=locale, page_size=page_size, page_token=page_token)
