"""Query parameters shared by list endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from services.gateway.schemas import MAX_PAGE_SIZE, MAX_PAGE_TOKEN

PageSize = Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE, description=f"At most {MAX_PAGE_SIZE}; default 50.")]
PageToken = Annotated[
    str | None,
    Query(max_length=MAX_PAGE_TOKEN, description="`next_page_token` of the previous page."),
]
