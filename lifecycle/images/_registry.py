"""A client of the OCI distribution API (``/v2/``), enough to pull and push images.

httpx's ``AsyncClient`` runs on both anyio backends. Authentication as the
docker CLI does it: a request answered ``401`` carries a
``WWW-Authenticate`` challenge; ``Basic`` is answered with the
credentials, ``Bearer`` with a token fetched from the challenge's realm for
the challenge's scope (distribution's ``token`` auth, Docker Hub's). Pushes
ask with ``HEAD`` whether a blob is there before uploading it, and try a
cross-repository mount (``POST .../blobs/uploads/?mount=&from=``) from a
repository of the same registry that has it, as skopeo does; an upload is
one monolithic ``PUT`` with the digest (distribution spec, "Pushing a blob
monolithically").
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Final, Self, final

import httpx

from lifecycle._errors import ImageNotFoundError, RegistryError

__all__ = ["MANIFEST_ACCEPT", "RegistryClient"]

MANIFEST_ACCEPT: Final = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
_CHALLENGE_PARAMETER: Final = re.compile(r'(\w+)="([^"]*)"')
# Registries are slow to start a blob sometimes; a stalled connection is an error all the same.
_TIMEOUT: Final = httpx.Timeout(60.0, connect=10.0)


def _error_message(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors) or response.text
    except (ValueError, AttributeError):
        return response.text[:200]


@final
class RegistryClient:
    """One registry (``domain``), over HTTPS, or HTTP when ``insecure``."""

    def __init__(
        self, domain: str, *, insecure: bool = False, credentials: tuple[str, str] | None = None
    ) -> None:
        # Docker Hub's API lives on registry-1.docker.io (distribution's normalize.go note).
        host = "registry-1.docker.io" if domain == "docker.io" else domain
        self.domain = domain
        self._base = f"{'http' if insecure else 'https'}://{host}/v2/"
        self._credentials = credentials
        self._client = httpx.AsyncClient(timeout=_TIMEOUT, follow_redirects=True)
        self._authorization: dict[str, str] = {}  # scope -> Authorization header value

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._client.aclose()

    # -- requests with authentication --------------------------------------

    async def _send(
        self, method: str, url: str, *, scope: str, stream: bool = False, **options: Any
    ) -> httpx.Response:
        for attempt in range(2):
            headers = dict(options.pop("headers", None) or {})
            if scope in self._authorization:
                headers["Authorization"] = self._authorization[scope]
            request = self._client.build_request(method, url, headers=headers, **options)
            try:
                response = await self._client.send(request, stream=stream)
            except httpx.HTTPError as error:
                raise RegistryError(self.domain, f"{method} {url}: {error}") from None
            if response.status_code != httpx.codes.UNAUTHORIZED or attempt:
                return response
            challenge = response.headers.get("www-authenticate", "")
            await response.aclose()
            await self._answer(challenge, scope)
            options["headers"] = headers
        raise AssertionError("unreachable")  # pragma: no cover

    async def _answer(self, challenge: str, scope: str) -> None:
        kind, _, rest = challenge.partition(" ")
        parameters = dict(_CHALLENGE_PARAMETER.findall(rest))
        if kind.lower() == "basic":
            if self._credentials is None:
                raise RegistryError(self.domain, "the registry wants a user name and password")
            user, password = self._credentials
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._authorization[scope] = f"Basic {token}"
        elif kind.lower() == "bearer" and "realm" in parameters:
            query = {
                "service": parameters.get("service", ""),
                "scope": parameters.get("scope", scope),
            }
            auth = None if self._credentials is None else httpx.BasicAuth(*self._credentials)
            try:
                response = await self._client.get(parameters["realm"], params=query, auth=auth)
            except httpx.HTTPError as error:
                raise RegistryError(
                    self.domain, f"token from {parameters['realm']}: {error}"
                ) from None
            if response.status_code != httpx.codes.OK:
                raise RegistryError(
                    self.domain, f"token request refused: {_error_message(response)}"
                )
            document = response.json()
            token = document.get("token") or document.get("access_token")
            if not isinstance(token, str):
                raise RegistryError(self.domain, "the token service returned no token")
            self._authorization[scope] = f"Bearer {token}"
        else:
            raise RegistryError(self.domain, f"unsupported authentication challenge {challenge!r}")

    @staticmethod
    def _scope(repository: str, actions: str) -> str:
        return f"repository:{repository}:{actions}"

    def _fail(self, response: httpx.Response, what: str) -> RegistryError:
        return RegistryError(
            self.domain, f"{what}: HTTP {response.status_code}: {_error_message(response)}"
        )

    # -- pulling -------------------------------------------------------------

    async def manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        """The manifest (or index) ``repository:reference`` as bytes, and its media type."""
        response = await self._send(
            "GET",
            f"{self._base}{repository}/manifests/{reference}",
            scope=self._scope(repository, "pull"),
            headers={"Accept": MANIFEST_ACCEPT},
        )
        if response.status_code == httpx.codes.NOT_FOUND:
            raise ImageNotFoundError(
                f"{self.domain}/{repository}:{reference}", reason=_error_message(response)
            )
        if response.status_code != httpx.codes.OK:
            raise self._fail(response, f"manifest {repository}:{reference}")
        media = response.headers.get("content-type", "").split(";")[0].strip()
        if not media:
            media = str(json.loads(response.content).get("mediaType") or "")
        return response.content, media

    @asynccontextmanager
    async def blob(self, repository: str, digest: str) -> AsyncIterator[httpx.Response]:
        """The blob as a streaming response (read it with ``aiter_bytes``)."""
        response = await self._send(
            "GET",
            f"{self._base}{repository}/blobs/{digest}",
            scope=self._scope(repository, "pull"),
            stream=True,
        )
        try:
            if response.status_code != httpx.codes.OK:
                await response.aread()
                raise self._fail(response, f"blob {digest}")
            yield response
        finally:
            await response.aclose()

    # -- pushing -------------------------------------------------------------

    async def has_blob(self, repository: str, digest: str) -> bool:
        response = await self._send(
            "HEAD",
            f"{self._base}{repository}/blobs/{digest}",
            scope=self._scope(repository, "pull,push"),
        )
        return response.status_code == httpx.codes.OK

    async def mount(self, repository: str, digest: str, source: str) -> bool:
        """Ask the registry to link ``digest`` from ``source``, another repository; True if done."""
        response = await self._send(
            "POST",
            f"{self._base}{repository}/blobs/uploads/",
            scope=f"{self._scope(repository, 'pull,push')} {self._scope(source, 'pull')}",
            params={"mount": digest, "from": source},
        )
        if response.status_code == httpx.codes.CREATED:
            return True
        if response.status_code == httpx.codes.ACCEPTED:
            # Not mounted: the registry opened an upload instead; cancel it, we upload our way.
            location = response.headers.get("location")
            if location:
                await self._send(
                    "DELETE",
                    str(response.url.join(location)),
                    scope=self._scope(repository, "pull,push"),
                )
        return False

    async def upload(
        self, repository: str, digest: str, size: int, chunks: AsyncIterator[bytes]
    ) -> None:
        """Upload a blob in one PUT (the body is streamed from ``chunks``)."""
        scope = self._scope(repository, "pull,push")
        started = await self._send("POST", f"{self._base}{repository}/blobs/uploads/", scope=scope)
        if started.status_code != httpx.codes.ACCEPTED or "location" not in started.headers:
            raise self._fail(started, f"starting the upload of {digest}")
        location = started.url.join(started.headers["location"])
        response = await self._send(
            "PUT",
            str(location.copy_merge_params({"digest": digest})),
            scope=scope,
            content=chunks,
            headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
        )
        if response.status_code != httpx.codes.CREATED:
            raise self._fail(response, f"uploading {digest}")

    async def put_manifest(self, repository: str, reference: str, data: bytes, media: str) -> str:
        """Store a manifest under a tag (or its digest); the digest the registry reports."""
        response = await self._send(
            "PUT",
            f"{self._base}{repository}/manifests/{reference}",
            scope=self._scope(repository, "pull,push"),
            content=data,
            headers={"Content-Type": media},
        )
        if response.status_code != httpx.codes.CREATED:
            raise self._fail(response, f"manifest {repository}:{reference}")
        return str(response.headers.get("docker-content-digest", ""))
