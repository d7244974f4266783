"""Artifact storage: agent code and validator logs, reached through short-lived signed URLs.

Two backends behind one interface: ``LocalStorage`` keeps files under the state directory and
signs URLs with HMAC (served by this app at ``/artifacts/{key}``); ``S3Storage`` hands out boto3
presigned URLs for any S3-compatible store.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urlencode

from oro_graph.errors import ArtifactNotFound, ValidationFailed
from oro_graph.settings import Settings

_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


def check_key(key: str) -> str:
    """Keys are relative slash-separated names; no '..', no absolute paths, no odd characters."""
    if len(key) > 512 or not _KEY_RE.match(key) or any(part in {".", ".."} for part in key.split("/")):
        raise ValidationFailed(f"invalid artifact key {key!r}")
    return key


@dataclass(frozen=True)
class SignedUrl:
    url: str
    expires_at: datetime
    method: str = "GET"


class Storage(Protocol):
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def download_url(self, key: str, *, seconds: int) -> SignedUrl: ...

    def upload_url(self, key: str, *, seconds: int, max_bytes: int, content_type: str) -> SignedUrl: ...


class LocalStorage:
    def __init__(self, root: Path, *, secret: bytes, base_url: str) -> None:
        self.root = root
        self._secret = secret
        self._base_url = base_url

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a crash never leaves a half-written artifact under its key.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise ArtifactNotFound(f"artifact {key} does not exist")
        return path.read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def signature(self, method: str, key: str, expires: int, max_bytes: int = 0) -> str:
        message = f"{method}\n{key}\n{expires}\n{max_bytes}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _signed(self, method: str, key: str, seconds: int, max_bytes: int = 0) -> SignedUrl:
        expires = int(time.time()) + seconds
        query = {"expires": expires, "signature": self.signature(method, check_key(key), expires, max_bytes)}
        if max_bytes:
            query["max_bytes"] = max_bytes
        url = f"{self._base_url}/artifacts/{quote(key)}?{urlencode(query)}"
        return SignedUrl(url=url, expires_at=datetime.fromtimestamp(expires, UTC), method=method)

    def download_url(self, key: str, *, seconds: int) -> SignedUrl:
        return self._signed("GET", key, seconds)

    def upload_url(self, key: str, *, seconds: int, max_bytes: int, content_type: str) -> SignedUrl:
        return self._signed("PUT", key, seconds, max_bytes)

    def verify(self, method: str, key: str, expires: int, signature: str, max_bytes: int = 0) -> None:
        """Raise unless the URL was signed by us for this method and key and has not expired."""
        from oro_graph.errors import Forbidden

        check_key(key)
        expected = self.signature(method, key, expires, max_bytes)
        if not hmac.compare_digest(expected, signature):
            raise Forbidden("the signature of this URL is not valid")
        if expires < time.time():
            raise Forbidden("this URL has expired; request a new one")


class S3Storage:
    def __init__(self, *, bucket: str, endpoint_url: str | None, region: str) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        # SigV4, so presigned PUTs can sign their Content-Length (SigV2 query auth cannot).
        self._s3 = boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=Config(signature_version="s3v4")
        )

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._s3.put_object(Bucket=self.bucket, Key=check_key(key), Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        try:
            return self._s3.get_object(Bucket=self.bucket, Key=check_key(key))["Body"].read()
        except self._s3.exceptions.NoSuchKey as exc:
            raise ArtifactNotFound(f"artifact {key} does not exist") from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._s3.head_object(Bucket=self.bucket, Key=check_key(key))
        except ClientError:
            return False
        return True

    def download_url(self, key: str, *, seconds: int) -> SignedUrl:
        url = self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": check_key(key)}, ExpiresIn=seconds
        )
        return SignedUrl(url=url, expires_at=_in(seconds))

    def upload_url(self, key: str, *, seconds: int, max_bytes: int, content_type: str) -> SignedUrl:
        url = self._s3.generate_presigned_url(
            "put_object",
            # ContentLength is signed: the store refuses a body of any other size.
            Params={
                "Bucket": self.bucket,
                "Key": check_key(key),
                "ContentType": content_type,
                "ContentLength": max_bytes,
            },
            ExpiresIn=seconds,
        )
        return SignedUrl(url=url, expires_at=_in(seconds), method="PUT")


def _in(seconds: int) -> datetime:
    return datetime.fromtimestamp(int(time.time()) + seconds, UTC)


def make_storage(settings: Settings) -> Storage:
    if settings.storage_backend == "s3":
        return S3Storage(
            bucket=settings.s3_bucket or "", endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
        )
    return LocalStorage(
        settings.state_dir / "artifacts", secret=settings.secret, base_url=settings.public_base_url
    )
