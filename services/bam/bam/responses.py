"""Answers of the hot read routes (badcase list, stats) serialised in one step by pydantic's own JSON serialiser:
FastAPI would validate the returned model again, turn it into a dict, walk it with `jsonable_encoder` and then
`json.dumps` it. The route still declares `response_model`, so the OpenAPI document is unchanged."""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel


def json_answer(model: BaseModel) -> Response:
    return Response(model.__pydantic_serializer__.to_json(model), media_type="application/json")
