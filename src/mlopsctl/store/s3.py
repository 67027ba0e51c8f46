"""The shared store: objects in an S3 bucket (or anything that speaks S3: MinIO, R2, moto).

``s3://bucket/prefix`` keeps key ``k`` at object ``prefix/k``. S3 gives what the store
promises without locks or a database: a PUT replaces an object whole, reads after a
write see it, and conditional writes make the two races safe between machines —
``put_if_absent`` is ``PutObject`` with ``If-None-Match: *`` and ``compare_and_swap`` is
``PutObject`` with ``If-Match: <etag>``. S3 decides who wins; a loser gets 412 (or 409
when the writes overlap) and sees :class:`Conflict`. Nothing reads first and writes after.

boto3 comes from the ``[aws]`` extra and is imported on first use. Credentials and region
come the usual AWS way (environment, profile, instance or task role); the endpoint is
AWS unless ``MLOPS_S3_ENDPOINT_URL`` (or boto3's own ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL``) points elsewhere.
"""

from __future__ import annotations

import builtins
import os
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from mlopsctl.errors import Conflict, MlopsError, NotFound, StoreError
from mlopsctl.store.base import Store, check_key

ENDPOINT_ENVS = ("MLOPS_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
# S3 answers 409 when another conditional write to the key is in flight: not "exists", "try again"
_BUSY_RETRIES = 5
# the IAM action each call needs, for the access-denied message
_ACTIONS = {
    "get_object": "s3:GetObject",
    "head_object": "s3:GetObject",
    "put_object": "s3:PutObject",
    "delete_object": "s3:DeleteObject",
    "list_objects_v2": "s3:ListBucket",
}


_loader: Any = None
_loader_lock = threading.Lock()


def _session() -> Any:
    """A boto3 session of its own (sessions are not thread-safe), sharing botocore's parsed
    service descriptions with the others: a client then takes ~30 ms to make, not ~200 ms."""
    global _loader
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    with _loader_lock:
        if _loader is None:
            _loader = core.get_component("data_loader")
        else:
            core.register_component("data_loader", _loader)
    return boto3.session.Session(botocore_session=core)


class _Busy(Conflict):
    """409 ConditionalRequestConflict: a concurrent conditional write to the same key."""


class S3Store(Store):
    page_size = 1000  # keys per ListObjectsV2 answer (S3's maximum)

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        if not bucket or "/" in bucket:
            raise StoreError(f"s3://{bucket}/{prefix}", "expected s3://BUCKET/PREFIX")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.root = self.prefix + "/" if self.prefix else ""
        self.endpoint_url = endpoint_url or next((os.environ[e] for e in ENDPOINT_ENVS if os.environ.get(e)), None)
        self.region = region
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._lock = threading.Lock()
        self._client_obj: Any = None
        self._bucket_seen = False

    @classmethod
    def from_uri(cls, uri: str) -> S3Store:
        parts = urlsplit(uri)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise StoreError(uri, "expected s3://BUCKET/PREFIX")
        return cls(parts.netloc, parts.path)

    # a store can be handed to another process (multiprocessing): the client is made again there
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_client_obj")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock(), _client_obj=None)

    def _client(self) -> Any:
        with self._lock:
            if self._client_obj is None:
                try:
                    import boto3  # noqa: F401  (the [aws] extra)
                    from botocore.config import Config
                except ImportError:
                    raise StoreError(self.uri, "boto3 is not installed: pip install 'mlopsctl[aws]'") from None
                try:
                    self._client_obj = _session().client(
                        "s3",
                        endpoint_url=self.endpoint_url,
                        region_name=self.region,
                        config=Config(user_agent_extra="mlopsctl"),
                    )
                except Exception as exc:  # a bad profile, region or endpoint URL
                    raise StoreError(self.uri, f"{type(exc).__name__}: {exc}") from None
            return self._client_obj

    def _call(self, op: str, key: str | None, **kwargs: Any) -> Any:
        """One S3 call, its failures turned into the store's errors (never a botocore traceback)."""
        client = self._client()  # first: it says what to install when boto3 is missing
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            out = getattr(client, op)(Bucket=self.bucket, **kwargs)
            if op == "get_object":  # read the body here: a cut connection is a store error too
                out["Data"] = out["Body"].read()
            return out
        except ClientError as exc:
            raise self._translate(exc, op, key) from None
        except NoCredentialsError:
            raise StoreError(
                self.uri,
                "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE, "
                "or run with an instance or task role",
            ) from None
        except BotoCoreError as exc:  # endpoint unreachable, timeouts, a truncated body
            where = f" at {self.endpoint_url}" if self.endpoint_url else ""
            raise StoreError(self.uri, f"{op} failed{where}: {exc}") from None

    def _translate(self, exc: Any, op: str, key: str | None) -> MlopsError:
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        what = f"s3://{self.bucket}/{self.root}{key}" if key is not None else self.uri
        if code == "NoSuchBucket":
            return StoreError(self.uri, f"bucket {self.bucket!r} does not exist (create it, or check the name)")
        if code in ("NoSuchKey", "404", "NotFound") or status == 404:
            return NotFound("store object", key or self.uri)
        if code == "ConditionalRequestConflict" or status == 409:
            return _Busy(key or "", f"{key} is being written by someone else")
        if code == "PreconditionFailed" or status == 412:
            return Conflict(key or "", f"{key} exists or changed since it was read")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
            return StoreError(self.uri, f"credentials refused ({code}): check AWS_PROFILE or the access keys in use")
        if code in ("AccessDenied", "AllAccessDisabled", "403") or status == 403:
            hint = ""
            if op in ("get_object", "head_object"):
                hint = "; without s3:ListBucket a missing key also reads as denied"
            action = _ACTIONS.get(op, op)
            return StoreError(
                self.uri,
                f"access denied: {action} on {what} (the IAM policy of the credentials in use must allow it, "
                f"see docs/store.md{hint})",
            )
        return StoreError(self.uri, f"{op} {what}: {code or status}: {err.get('Message', exc)}")

    def _object(self, key: str) -> str:
        return self.root + check_key(key)

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        out = self._call("get_object", key, Key=self._object(key))
        return out["Data"], out["ETag"]

    def put(self, key: str, data: bytes) -> str:
        return str(self._call("put_object", key, Key=self._object(key), Body=data)["ETag"])

    def put_if_absent(self, key: str, data: bytes) -> str:
        obj = self._object(key)
        for attempt in range(_BUSY_RETRIES):
            try:
                return str(self._call("put_object", key, Key=obj, Body=data, IfNoneMatch="*")["ETag"])
            except _Busy:
                time.sleep(0.05 * 2**attempt)  # the other write decides: it exists or it was abandoned
        raise Conflict(key, f"{key} kept being written by someone else")

    def compare_and_swap(self, key: str, expected_etag: str | None, data: bytes) -> str:
        if expected_etag is None:
            try:
                return self.put_if_absent(key, data)
            except Conflict:
                raise Conflict(key, f"{key} changed since it was read") from None
        try:
            out = self._call("put_object", key, Key=self._object(key), Body=data, IfMatch=expected_etag)
        except NotFound:  # If-Match on a key that is gone
            raise Conflict(key, f"{key} changed since it was read") from None
        except Conflict:  # 412, and 409: the concurrent write wins or not, either way ours is stale
            raise Conflict(key, f"{key} changed since it was read") from None
        return str(out["ETag"])

    def _pages(self, prefix: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = self._call(
                "list_objects_v2", prefix, Prefix=self.root + prefix, MaxKeys=self.page_size, **kwargs, **extra
            )
            self._bucket_seen = True
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def list(self, prefix: str = "") -> builtins.list[str]:
        n = len(self.root)
        keys = (o["Key"][n:] for page in self._pages(prefix) for o in page.get("Contents", []))
        return sorted(k for k in keys if k and not k.endswith("/"))  # skip folder markers made by consoles

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        # one level only (S3's delimiter), instead of listing every object below the prefix
        n = len(self.root) + len(prefix)
        pages = self._pages(prefix, Delimiter="/")
        return sorted(p["Prefix"][n:].rstrip("/") for page in pages for p in page.get("CommonPrefixes", []))

    def exists(self, key: str) -> bool:
        try:
            self._call("head_object", key, Key=self._object(key))
            return True
        except NotFound:
            # HEAD answers a bare 404 for a missing bucket too: list once to tell them apart
            if not self._bucket_seen:
                self._call("list_objects_v2", None, Prefix=self.root, MaxKeys=1)
                self._bucket_seen = True
            return False

    def delete(self, key: str) -> None:
        self._call("delete_object", key, Key=self._object(key))
