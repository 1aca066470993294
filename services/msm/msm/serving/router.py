from __future__ import annotations

import time
from typing import Annotated, Any, TypeVar

import jwt
import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from mlife_shared.app import SessionDep, StoreDep
from mlife_shared.auth import IDENTITY_HEADER, Identity, Tester, Viewer, current_identity, verify_identity
from mlife_shared.errors import Forbidden, PayloadTooLarge, Unprocessable
from msm.inputs import reject_nul
from msm.serving.feedback import FeedbackService
from msm.serving.schemas import FeedbackRequest, FeedbackResponse, PredictRequest, PredictResponse
from msm.serving.service import PredictionService

router = APIRouter(tags=["serving"])
BodyT = TypeVar("BodyT", bound=BaseModel)


async def feedback_service(request: Request, session: SessionDep, store: StoreDep) -> FeedbackService:
    return FeedbackService(session, request.app.state.serving, store, request.app.state.settings)


async def serving_viewer(request: Request) -> Identity:
    """`Viewer`, as an async dependency: FastAPI runs sync dependencies in a thread pool, which costs
    more than the inference itself on the predict path."""
    token = request.headers.get(IDENTITY_HEADER, "")
    if not token:
        await current_identity(request)  # raises the usual 401
    return serving_identity(request.app.state, token)


def serving_identity(state: Any, token: str) -> Identity:
    """The viewer a (non-empty) identity token names. A verified token is remembered until it expires (tokens are
    short-lived), so a client's burst verifies its signature once."""
    verified: dict[str, tuple[float, Identity]] = state.serving.identities
    cached = verified.get(token)
    if cached is not None and cached[0] > time.time():
        identity = cached[1]
    else:
        identity = verify_identity(token, state.settings.identity_secret.get_secret_value())
        if len(verified) > 10_000:
            verified.clear()
        claims = jwt.decode(token, options={"verify_signature": False})  # verified just above
        verified[token] = (float(claims["exp"]), identity)
    if not identity.has("viewer"):
        raise Forbidden("this needs the viewer role")
    return identity


def check_declared_size(declared: str | None, limit: int) -> None:
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")


async def _body(request: Request) -> bytes:
    limit = request.app.state.settings.max_request_bytes
    declared = request.headers.get("content-length")
    check_declared_size(declared, limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes, model: type[BodyT]) -> BodyT:
    return _validate(_loads(raw), model)


def _loads(raw: bytes) -> Any:
    try:  # orjson: refuses NaN/Infinity and arrays nested past 1024 levels itself (both bad input, not a 500)
        return orjson.loads(raw)
    except RecursionError as exc:
        raise Unprocessable("the body is nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unprocessable(f"the body is not JSON: {exc}") from exc


def _validate(data: Any, model: type[BodyT]) -> BodyT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Unprocessable([{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]) from exc


_PREDICT_FIELDS = frozenset(PredictRequest.model_fields)


def _predict_body(raw: bytes) -> dict[str, Any]:
    """The predict body as PredictRequest(...).model_dump() would give it. The common shape (an object of
    inputs, optional short client/device ids, nothing else) is checked here without building the model;
    anything else goes through PredictRequest, for the same answer and error messages."""
    data = _loads(raw)
    if type(data) is dict and type(data.get("inputs")) is dict and data.keys() <= _PREDICT_FIELDS:
        client, device = data.get("client_id"), data.get("device_id")
        if all(v is None or (type(v) is str and len(v) <= 200) for v in (client, device)):
            return {"inputs": data["inputs"], "client_id": client, "device_id": device}
    return _validate(data, PredictRequest).model_dump()


async def predict_endpoint(request: Request) -> Response:
    await serving_viewer(request)
    # reject_nul's check on the raw scope (request.url and the parsed query cost more than a small model's run)
    query: bytes = request.scope["query_string"]
    if "\x00" in request.scope["path"] or (query and (b"\x00" in query or b"%00" in query)):
        raise Unprocessable("the path or the query contains a NUL character")
    answer = await predict_answer(request.app.state, request.path_params["deployment"], await _body(request))
    return Response(answer, media_type="application/json")


async def predict_answer(state: Any, deployment: str, raw: bytes) -> bytes:
    """The answer to a predict body, as JSON bytes: shared by this route and the lane in front of it."""
    result = await PredictionService(state.serving, state.store).predict(deployment, _predict_body(raw))
    return orjson.dumps(result)


# A plain Starlette route, registered first so it takes the requests: FastAPI's dependency solving and response
# handling cost several times the inference of a small model. The FastAPI route below has the same contract and
# stays for the OpenAPI document. In front of both, `msm.serving.lane.PredictLane` answers the usual predict
# itself and hands this route everything else (errors included), which this route answers as it always did.
router.add_route("/serve/{deployment}/predict", predict_endpoint, methods=["POST"], include_in_schema=False)


@router.post("/serve/{deployment}/predict", response_model=PredictResponse,
             openapi_extra={"requestBody": {"content": {"application/json": {
                 "schema": PredictRequest.model_json_schema()}}}})
async def predict(deployment: str, request: Request,
                  _: Annotated[Identity, Depends(serving_viewer)]) -> Response:
    """Predict with a live deployment (by name or id): one sample or a batch, validated against the model.
    One sample has the model's rank minus the batch axis; the answer names the version that served it."""
    return await predict_endpoint(request)


@router.post("/serve/{deployment}/feedback", status_code=201,
             openapi_extra={"requestBody": {"content": {"application/json": {
                 "schema": FeedbackRequest.model_json_schema()}}}})
async def feedback(deployment: str, request: Request, service: Annotated[FeedbackService, Depends(feedback_service)],
                   _: Tester, __: Annotated[None, Depends(reject_nul)]) -> FeedbackResponse:
    """Flag a served prediction as wrong: the input is kept (one sample, as a typed .npy/.npz) and
    `serving.feedback` goes to BAM."""
    body = _parse(await _body(request), FeedbackRequest)
    row, version = await service.feedback(deployment, body)
    return FeedbackResponse(id=row.id, deployment_id=row.deployment_id, model_name=version.name,
                            model_version=version.version, input_ref=row.input_ref)


@router.get("/serve/{deployment}/stats")
async def stats(deployment: str, request: Request, _: Viewer,
                __: Annotated[None, Depends(reject_nul)]) -> dict[str, object]:
    """Latency per version served by this API process (p50/p90/p99 over the last 10 000 requests)."""
    registry = request.app.state.serving
    view = await registry.resolve(deployment, live_only=False)
    out = {f"{name}:{version}": lat.summary() for (name, version), lat in registry.latency.items()
           if name == view.name}
    batches = {str(v.id): {"batches": m.batcher.batches, "rows": m.batcher.rows}
               for v in view.primaries + view.shadows if (m := registry.models.get(v.id)) is not None}
    return {"deployment_id": str(view.id), "latency": out, "batching": batches}
