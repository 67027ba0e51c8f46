"""A real S3-compatible server on loopback for the tests: moto in server mode (S3, SSM, SNS…).

`start_moto()` starts one on 127.0.0.1 with S3's atomic conditional writes; `s3_env` cuts the
test off from this machine's AWS set-up; `new_bucket` makes a fresh bucket; `admin_client`
looks behind the store. conftest imports the `s3_endpoint` fixture: one server per test module.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REGION = "us-east-1"

BUSY: dict[str, int] = {}  # object path → how many conditional writes to it the server answers 409


def _one_write_at_a_time(app: Any) -> Any:
    """Make moto's conditional writes atomic, as S3's are; and let a test make a key busy.

    moto checks If-Match / If-None-Match and then stores the object in two steps with no lock
    between them, and its server runs each request in its own thread: two racing writes can
    both pass the check (seen here: 400 concurrent increments left the counter at 399). S3
    itself decides each conditional write atomically. Serialising moto's write requests
    (reads still run in parallel) gives the emulator S3's semantics; the clients still race.

    moto never answers 409 ConditionalRequestConflict (S3's answer when conditional writes
    to a key overlap); for a path in BUSY this answers it, as S3 would, over the same HTTP.
    """
    lock = threading.Lock()

    def serve(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            return app(environ, start_response)
        with lock:
            path = environ.get("PATH_INFO", "")
            conditional = "HTTP_IF_MATCH" in environ or "HTTP_IF_NONE_MATCH" in environ
            if conditional and BUSY.get(path, 0) > 0:
                BUSY[path] -= 1
                environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                start_response("409 Conflict", [("Content-Type", "application/xml")])
                return [b"<Error><Code>ConditionalRequestConflict</Code><Message>busy</Message></Error>"]
            body = app(environ, start_response)
            try:
                return [b"".join(body)]
            finally:
                if hasattr(body, "close"):
                    body.close()

    return serve


def start_moto() -> tuple[Any, str]:
    """A moto server on 127.0.0.1 (a free port) with atomic conditional writes; (server, endpoint)."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (the dev extra has it)")
    pytest.importorskip("boto3", reason="boto3 is not installed: pip install 'mlopsctl[aws]'")
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    assert hasattr(server, "_server") and hasattr(server._server, "app"), "moto's server changed shape"
    server._server.app = _one_write_at_a_time(server._server.app)
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


_AWS_SETUP = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "MLOPS_S3_ENDPOINT_URL",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
)


def s3_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **extra: str) -> None:
    """Dummy credentials, and nothing from this machine's AWS set-up (profiles, endpoints, IMDS)."""
    for name in _AWS_SETUP:
        monkeypatch.delenv(name, raising=False)
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        **extra,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@functools.cache
def admin_client(endpoint: str, service: str = "s3") -> Any:
    """The server's own client (not the store's), for buckets, users and looking behind the store."""
    import boto3

    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def new_bucket(endpoint: str) -> str:
    bucket = f"mlops-test-{uuid.uuid4().hex[:16]}"
    admin_client(endpoint).create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server, endpoint = start_moto()
    yield endpoint
    server.stop()
