"""Pulls through the API from a real registry (CNCF distribution on 127.0.0.1).

The image is put there by skopeo (from the `docker save` tar), so neither
side of the pull is our own code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..images.tools import Registry, require, run
from .conftest import Server

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def registry(tmp_path: Path, busybox_archive: Path) -> Iterator[Registry]:
    skopeo = require("skopeo")
    server = Registry(tmp_path / "registry")
    try:
        run(
            skopeo, "copy", "--dest-tls-verify=false", f"docker-archive:{busybox_archive}",
            f"docker://{server.address}/tools/box:1.0",
        )  # fmt: skip
        yield server
    finally:
        server.stop()


def test_docker_pull_and_run(server: Server, registry: Registry) -> None:
    reference = f"{registry.address}/tools/box:1.0"
    pulled = server.docker("pull", reference)
    assert f"Status: Image is up to date for {reference}" in pulled.stdout
    rows = server.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert [reference] == rows
    assert "pulled\n" == server.docker("run", "--rm", reference, "echo", "pulled").stdout
    assert any("GET /v2/tools/box/manifests/1.0" in line for line in registry.requests())


def test_run_pulls_a_missing_image_first(server: Server, registry: Registry) -> None:
    reference = f"{registry.address}/tools/box:1.0"
    result = server.docker("run", "--rm", reference, "echo", "fresh")
    assert "fresh\n" == result.stdout
    assert f"Unable to find image '{reference}' locally" in result.stderr


def test_a_failed_pull_is_a_json_error_and_adds_nothing(server: Server, registry: Registry) -> None:
    missing = server.docker("pull", f"{registry.address}/tools/box:9.9", check=False)
    assert 1 == missing.returncode
    assert "9.9" in missing.stderr
    transport = httpx.HTTPTransport(uds=str(server.socket))
    with httpx.Client(transport=transport, base_url="http://docker", timeout=30) as http:
        answer = http.post("/images/create", params={"fromImage": "Upper"})
        assert 400 == answer.status_code
        assert "lowercase" in answer.json()["message"]
        stream = http.post(
            "/images/create", params={"fromImage": f"{registry.address}/nope", "tag": "1"}
        )
        messages = [json.loads(line) for line in stream.text.splitlines()]
        assert "errorDetail" in messages[-1]
        assert [] == http.get("/images/json").json()
