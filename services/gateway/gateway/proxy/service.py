"""Forwarding to the services: streamed both ways, the caller's identity signed into
`X-MLife-Identity`, a clear 503 naming the service when it is down."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from fastapi import Request
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

from gateway.config import SERVICES, Settings
from mlife_shared.auth import IDENTITY_HEADER, Identity, sign_identity
from mlife_shared.errors import MLifeError, NotFound, ServiceUnavailable

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "authorization", "cookie",
              IDENTITY_HEADER.lower()}
PUBLIC_PATHS = {"healthz", "readyz"}


class GatewayTimeout(MLifeError):
    """The service did not answer in time."""

    status_code = 504


class Upstreams:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(settings.upstream_timeout_seconds, connect=3.0),
                                        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
                                        follow_redirects=False)

    async def close(self) -> None:
        await self.client.aclose()

    def base(self, service: str) -> str:
        if service not in SERVICES:
            raise NotFound(f"no service {service!r}; the services are {', '.join(SERVICES)}")
        return self.settings.upstream(service)

    async def forward(self, request: Request, service: str, path: str, identity: Identity | None) -> StreamingResponse:
        url = f"{self.base(service)}/api/{service}/{path}"
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        if identity is not None:
            token = sign_identity(identity, self.settings.identity_secret.get_secret_value(),
                                  ttl_seconds=self.settings.identity_ttl_seconds)
            headers.append((IDENTITY_HEADER, token))
        client_host = request.client.host if request.client else ""
        headers.append(("x-forwarded-for", client_host))
        if rid := request.scope.get("state", {}).get("request_id"):
            headers = [(k, v) for k, v in headers if k.lower() != "x-request-id"] + [("x-request-id", rid)]
        has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
        upstream = self.client.build_request(request.method, url, params=request.url.query or None,
                                             headers=headers, content=request.stream() if has_body else None)
        try:
            response = await self.client.send(upstream, stream=True)
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ConnectTimeout) as exc:
            raise ServiceUnavailable(f"the {service} service is unavailable; retry in a moment") from exc
        except httpx.TimeoutException as exc:
            raise GatewayTimeout(f"the {service} service did not answer in time") from exc
        out_headers = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
        return StreamingResponse(response.aiter_raw(), status_code=response.status_code, headers=out_headers,
                                 background=BackgroundTask(response.aclose))

    async def readiness(self) -> dict[str, str]:
        async def _one(service: str) -> tuple[str, str]:
            try:
                r = await self.client.get(f"{self.base(service)}/readyz", timeout=3.0)
            except httpx.HTTPError as exc:
                return service, f"fail: unreachable ({type(exc).__name__})"
            if r.status_code == 200:
                return service, "ok"
            failing = {k: v for k, v in r.json().get("checks", {}).items() if v != "ok"} if r.content else {}
            return service, f"fail: {failing or r.status_code}"

        return dict(await asyncio.gather(*(_one(s) for s in SERVICES)))

    async def merged_openapi(self, own: dict[str, Any]) -> dict[str, Any]:
        """The gateway's own schema plus every service's, component names kept apart where they clash."""

        async def _fetch(service: str) -> tuple[str, dict[str, Any] | None]:
            try:
                r = await self.client.get(f"{self.base(service)}/openapi.json", timeout=5.0)
                r.raise_for_status()
                return service, r.json()
            except (httpx.HTTPError, ValueError):
                return service, None

        docs = await asyncio.gather(*(_fetch(s) for s in SERVICES))
        merged: dict[str, Any] = {
            "openapi": own.get("openapi", "3.1.0"),
            "info": {"title": "MLife API", "version": own.get("info", {}).get("version", "0.1.0"),
                     "description": "One API for BAM, DAM, MTT and MSM. Authenticate with "
                                    "`Authorization: Bearer <API token>`."},
            "paths": dict(own.get("paths", {})),
            "components": {"schemas": dict(own.get("components", {}).get("schemas", {})),
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}],
        }
        unavailable = []
        for service, doc in docs:
            if doc is None:
                unavailable.append(service)
                continue
            doc = _rename_clashing(doc, merged["components"]["schemas"], prefix=service.upper())
            merged["paths"].update(doc.get("paths", {}))
            merged["components"]["schemas"].update(doc.get("components", {}).get("schemas", {}))
        if unavailable:
            merged["info"]["x-mlife-unavailable"] = unavailable
        return merged


def _rename_clashing(doc: dict[str, Any], existing: dict[str, Any], *, prefix: str) -> dict[str, Any]:
    schemas = doc.get("components", {}).get("schemas", {})
    clashes = [n for n, s in schemas.items() if n in existing and existing[n] != s]
    if not clashes:
        return doc
    text = json.dumps(doc)
    for name in clashes:
        text = text.replace(f'"#/components/schemas/{name}"', f'"#/components/schemas/{prefix}{name}"')
    doc = json.loads(text)
    comps = doc["components"]["schemas"]
    for name in clashes:
        comps[prefix + name] = comps.pop(name)
    return doc
