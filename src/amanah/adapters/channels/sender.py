"""Posting :class:`SendRequest` values to the Graph Send APIs (or the local fake) with httpx.

:class:`GraphSender` is async (one ``httpx.AsyncClient`` with keep-alive and a connection pool: what
an outbox worker wants for throughput); :class:`SyncGraphSender` is the same over ``httpx.Client``.
Both return a :class:`SendOutcome` and never raise for platform or network failures:

* an answer -> the channel adapter's ``classify_error`` (delivered / retry / permanent);
* nothing was sent (connect error, connect or pool timeout) -> ``RETRY`` / ``TRANSIENT``;
* the request may have reached Meta (read/write timeout, connection dropped mid-answer) ->
  ``RETRY`` / ``AMBIGUOUS``: the outbox should first look for the echo carrying the request key in
  ``metadata`` before re-sending (Messenger), since the Send API has no idempotency key.

The access token goes in the ``Authorization: Bearer`` header, never in the URL (so it cannot land
in access logs); ``appsecret_proof`` (HMAC of the token with the app secret) is added as a query
parameter when an app secret is configured.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx

from amanah.adapters.channels import meta
from amanah.adapters.channels.base import (
    ChannelAdapter,
    ErrorAction,
    OutcomeKind,
    SendOutcome,
    SendRequest,
)
from amanah.domain.conversation import Channel
from amanah.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class GraphEndpoint:
    """Where and as whom to call the Send API of one channel."""

    base_url: str  # with the version, e.g. https://graph.facebook.com/v23.0
    access_token: str = field(repr=False)
    app_secret: str | None = field(default=None, repr=False)

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    def params(self) -> dict[str, str]:
        if not self.app_secret:
            return {}
        return {"appsecret_proof": meta.appsecret_proof(self.access_token, self.app_secret)}


def endpoints_from_settings(settings: Settings) -> dict[Channel, GraphEndpoint]:
    """The endpoints of every channel whose access token is configured."""
    endpoints: dict[Channel, GraphEndpoint] = {}
    token = settings.messenger_page_access_token.get_secret_value()
    if token:
        secret = settings.messenger_app_secret.get_secret_value() or None
        endpoints[Channel.MESSENGER] = GraphEndpoint(settings.messenger_graph_url, token, secret)
    token = settings.whatsapp_access_token.get_secret_value()
    if token:
        secret = settings.whatsapp_app_secret.get_secret_value() or None
        endpoints[Channel.WHATSAPP] = GraphEndpoint(settings.whatsapp_graph_url, token, secret)
    return endpoints


def _timeout(timeout_s: float) -> httpx.Timeout:
    return httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))


def outcome_for_exception(exc: httpx.HTTPError) -> SendOutcome:
    """Classify a network failure: not sent (safe to retry) or maybe sent (ambiguous)."""
    name = type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError | httpx.PoolTimeout):
        return SendOutcome(OutcomeKind.RETRY, action=ErrorAction.TRANSIENT, message=f"not sent: {name}")
    return SendOutcome(OutcomeKind.RETRY, action=ErrorAction.AMBIGUOUS, message=f"maybe sent: {name}")


class _Base:
    def __init__(
        self,
        endpoints: Mapping[Channel, GraphEndpoint],
        adapters: Mapping[Channel, ChannelAdapter] | None,
    ) -> None:
        self._endpoints = dict(endpoints)
        self._adapters = dict(adapters or {})

    def _prepare(self, request: SendRequest) -> tuple[str, dict[str, str], dict[str, str]] | SendOutcome:
        endpoint = self._endpoints.get(request.channel)
        if endpoint is None:
            return SendOutcome(
                OutcomeKind.PERMANENT,
                action=ErrorAction.INVALID_REQUEST,
                message=f"no Graph endpoint configured for {request.channel}",
            )
        return endpoint.url(request.path), endpoint.headers(), endpoint.params()

    def _classify(self, request: SendRequest, response: httpx.Response) -> SendOutcome:
        adapter = self._adapters.get(request.channel)
        headers: Mapping[str, str] = response.headers
        if adapter is not None:
            outcome = adapter.classify_error(response.status_code, response.content, headers)
        else:
            outcome = meta.classify_graph_response(response.status_code, response.content, headers)
        if outcome.kind is not OutcomeKind.DELIVERED:
            log.warning(
                "send %s %s: %s %s code=%s subcode=%s fbtrace_id=%s",
                request.channel,
                request.key,
                outcome.kind,
                outcome.action,
                outcome.code,
                outcome.subcode,
                outcome.trace_id,
            )
        return outcome


class GraphSender(_Base):
    """Async sender; use as ``async with GraphSender(...) as sender: await sender.send(req)``.

    ``transport`` replaces the network (``httpx.ASGITransport(app=create_fake_graph_app())`` in tests).
    ``adapters`` supply ``classify_error`` per channel (the Graph table is used for any channel
    without one).
    """

    def __init__(
        self,
        endpoints: Mapping[Channel, GraphEndpoint],
        *,
        adapters: Mapping[Channel, ChannelAdapter] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(endpoints, adapters)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.AsyncClient(timeout=_timeout(timeout_s), limits=limits, transport=transport)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> GraphSender:
        return cls(endpoints_from_settings(settings), **kwargs)

    async def send(self, request: SendRequest) -> SendOutcome:
        prepared = self._prepare(request)
        if isinstance(prepared, SendOutcome):
            return prepared
        url, headers, params = prepared
        try:
            response = await self._client.request(
                request.method, url, json=dict(request.body), headers=headers, params=params
            )
        except httpx.HTTPError as exc:
            outcome = outcome_for_exception(exc)
            log.warning("send %s %s: %s", request.channel, request.key, outcome.message)
            return outcome
        return self._classify(request, response)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class SyncGraphSender(_Base):
    """The same as :class:`GraphSender` over a blocking ``httpx.Client`` (for a threaded worker)."""

    def __init__(
        self,
        endpoints: Mapping[Channel, GraphEndpoint],
        *,
        adapters: Mapping[Channel, ChannelAdapter] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_connections: int = 20,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(endpoints, adapters)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.Client(timeout=_timeout(timeout_s), limits=limits, transport=transport)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> SyncGraphSender:
        return cls(endpoints_from_settings(settings), **kwargs)

    def send(self, request: SendRequest) -> SendOutcome:
        prepared = self._prepare(request)
        if isinstance(prepared, SendOutcome):
            return prepared
        url, headers, params = prepared
        try:
            response = self._client.request(
                request.method, url, json=dict(request.body), headers=headers, params=params
            )
        except httpx.HTTPError as exc:
            outcome = outcome_for_exception(exc)
            log.warning("send %s %s: %s", request.channel, request.key, outcome.message)
            return outcome
        return self._classify(request, response)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
