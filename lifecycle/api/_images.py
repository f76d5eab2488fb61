"""The ``/images`` routes: list, inspect, pull, load, save, tag, remove.

The store does the work (every layer checked as an import is); these
routes speak moby's wire forms: the JSON message stream of pull and load
(``{"status": ...}``, ``{"stream": ...}``, ``{"errorDetail": ...}``), the
``Untagged``/``Deleted`` list of remove.
"""

from __future__ import annotations

import ipaddress
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import anyio

from lifecycle._errors import LifecycleError
from lifecycle.api._formats import image_inspect, image_summary
from lifecycle.api._http import (
    HttpError,
    JsonResponse,
    Request,
    Response,
    StreamResponse,
    json_line,
)
from lifecycle.api._params import flag, text
from lifecycle.api._state import ApiState
from lifecycle.images import Image, ImageReference, ImageStore

__all__ = [
    "MAX_LOAD_BYTES",
    "get_image",
    "inspect_image",
    "list_images",
    "load",
    "pull",
    "remove_image",
    "tag",
]

# The largest `docker load` body taken (spooled to a file in the store, never to memory).
MAX_LOAD_BYTES: Final = 16 * 1024**3
_CHUNK: Final = 1024 * 1024


def _scratch_directory(store: ImageStore, prefix: str) -> Path:
    """A private directory inside the store (same filesystem, removed with its content)."""
    scratch_root = store.root / ".lifecycle"
    scratch_root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=scratch_root))


def _errorjson_line(error: BaseException) -> bytes:
    # moby's jsonmessage error form: the CLI prints errorDetail.message and exits 1.
    return json_line({"errorDetail": {"message": str(error)}, "error": str(error)})


def _users(state: ApiState, image: Image) -> int:
    return sum(
        1
        for container in state.engine.containers()
        if container.image is not None and container.image.id == image.id
    )


async def list_images(state: ApiState, request: Request) -> Response:
    """``GET /images/json``: newest first, as ``docker images`` lists them."""
    store = state.require_store()
    images = sorted(
        store.images(), key=lambda image: image.created.timestamp() if image.created else 0
    )
    return JsonResponse(
        200, [image_summary(image, _users(state, image)) for image in reversed(images)]
    )


async def inspect_image(state: ApiState, request: Request, reference: str) -> Response:
    """``GET /images/{name}/json``."""
    return JsonResponse(200, image_inspect(state.require_store().get(reference)))


def _is_insecure(state: ApiState, domain: str) -> bool:
    """moby's default: registries on loopback (127.0.0.0/8, ::1, localhost) speak plain HTTP,
    as do the ones ``--insecure-registry`` names."""
    if domain in state.insecure_registries:
        return True
    host = domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def pull(state: ApiState, request: Request) -> StreamResponse:
    """``POST /images/create?fromImage=&tag=``: pull, as moby's progress message stream."""
    store = state.require_store()
    if text(request, "fromSrc"):
        raise HttpError(400, "importing a root filesystem (fromSrc) is not supported by lifecycle")
    name = text(request, "fromImage") or ""
    tag_text = text(request, "tag") or ""
    if not name:
        raise HttpError(400, "fromImage is required")
    wanted = name
    if tag_text:
        wanted = f"{name}@{tag_text}" if tag_text.startswith("sha256:") else f"{name}:{tag_text}"
    try:
        reference = ImageReference.parse(wanted)
    except LifecycleError as error:
        raise HttpError(400, str(error)) from None

    async def progress() -> AsyncIterator[bytes]:
        yield json_line(
            {"status": f"Pulling from {reference.repository}", "id": reference.tag or "latest"}
        )
        try:
            image = await store.pull(str(reference), insecure=_is_insecure(state, reference.domain))
        except LifecycleError as error:
            yield _errorjson_line(error)
            return
        for layer in image.layers:
            yield json_line(
                {"status": "Pull complete", "id": layer.digest.removeprefix("sha256:")[:12]}
            )
        yield json_line({"status": f"Digest: {image.manifest_digest}"})
        yield json_line({"status": f"Status: Image is up to date for {reference.familiar}"})

    return StreamResponse(200, progress(), "application/json")


async def load(state: ApiState, request: Request) -> StreamResponse:
    """``POST /images/load``: a ``docker save`` tar (or an OCI archive), spooled to the store's
    disk with a size limit, then imported with every check an import makes."""
    store = state.require_store()
    directory = await anyio.to_thread.run_sync(_scratch_directory, store, "load-")
    path = directory / "archive.tar"
    try:
        size = 0
        with await anyio.to_thread.run_sync(path.open, "xb") as out:
            async for chunk in request.body():
                size += len(chunk)
                if size > MAX_LOAD_BYTES:
                    raise HttpError(413, f"image archive larger than {MAX_LOAD_BYTES} bytes")
                await anyio.to_thread.run_sync(out.write, chunk)
        try:
            images = await store.import_archive(path)
        except LifecycleError as error:
            raise HttpError(400, f"cannot load the archive: {error}") from None
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(shutil.rmtree, directory)

    # moby prints "Loaded image" even with quiet=1 (quiet drops the progress bars only,
    # and the CLI asks for it whenever its output is not a terminal).
    async def report() -> AsyncIterator[bytes]:
        for image in images:
            names = [reference.familiar for reference in image.references if reference.tag]
            for familiar in names or [image.id]:
                label = "Loaded image" if names else "Loaded image ID"
                yield json_line({"stream": f"{label}: {familiar}\n"})

    return StreamResponse(200, report(), "application/json")


async def get_image(state: ApiState, request: Request, reference: str | None) -> StreamResponse:
    """``GET /images/{name}/get`` and ``GET /images/get?names=``: a tar ``docker load`` reads."""
    store = state.require_store()
    references = [reference] if reference is not None else request.query.get("names", [])
    if not references:
        raise HttpError(400, "no image named (names=)")
    for each in references:  # every name found before any work (404 for the first missing)
        store.get(each)
    directory = await anyio.to_thread.run_sync(_scratch_directory, store, "save-")
    target = directory / "images.tar"
    try:
        await store.save(references, target)
        handle = await anyio.to_thread.run_sync(target.open, "rb")
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(shutil.rmtree, directory)
        raise

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while data := await anyio.to_thread.run_sync(handle.read, _CHUNK):
                yield data
        finally:
            handle.close()
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(shutil.rmtree, directory)

    return StreamResponse(200, chunks(), "application/x-tar")


async def tag(state: ApiState, request: Request, reference: str) -> Response:
    """``POST /images/{name}/tag?repo=&tag=``: 201."""
    store = state.require_store()
    store.get(reference)  # 404 before the parameters are looked at, as moby
    repository = text(request, "repo") or ""
    tag_text = text(request, "tag") or "latest"
    if not repository:
        raise HttpError(400, "repo is required")
    store.tag(reference, f"{repository}:{tag_text}")  # a bad name: 400 (the router's mapping)
    return Response(201)


async def remove_image(state: ApiState, request: Request, reference: str) -> Response:
    """``DELETE /images/{name}?force=``: ``[{"Untagged": ...}, {"Deleted": ...}]``."""
    store = state.require_store()
    done = await store.remove(reference, force=flag(request, "force"))
    answer = []
    for line in done:
        kind, _, what = line.partition(": ")
        answer.append({kind: what})
    return JsonResponse(200, answer)
