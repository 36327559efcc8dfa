"""Where object bytes live: a local directory or an S3 bucket (boto3).

Objects are written once under a fresh physical address and never modified. A write goes to a
temporary file first and becomes visible under its address only when complete, so a crash or a
dropped connection mid-upload leaves no partial object behind. Publication never replaces a block:
the local store moves the finished file into place with ``renameat2(RENAME_NOREPLACE)`` (or links it,
``link(2)``, where that call is missing; both fail when the name exists), the S3 store writes with
``If-None-Match: *``. Of two uploads racing to one address (a presigned PUT URL
used twice) the first to finish wins and the other is refused, so bytes already linked and committed
cannot change underneath their checksum.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import BadRequest, Forbidden, Gone

CHUNK = 1024 * 1024
SINGLE_PUT_LIMIT = 64 * 1024 * 1024  # larger S3 uploads go as a multipart upload (no-clobber too)
DATA_DIR = "data"  # blocks live at <namespace>/data/<id>; garbage collection looks nowhere else


class AlreadyWritten(Forbidden):
    """The physical address already holds a block: addresses are used once, blocks never replaced."""

    def __init__(self, address: str) -> None:
        super().__init__(f"physical address {address!r} is already written; ask for a new one")


_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def _renameat2():
    """glibc's ``renameat2`` (Linux 3.15+, glibc 2.28+), or None where it is missing."""
    try:
        function = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_RENAMEAT2 = _renameat2()


def move_no_clobber(source: Path, target: Path) -> bool:
    """Move ``source`` to ``target`` atomically unless ``target`` exists; False (nothing moved) if it does.

    One ``rename`` that refuses to replace where the system has it; else a hard link, which also fails
    on an existing name (the caller removes ``source`` either way).
    """
    if _RENAMEAT2 is not None:
        if _RENAMEAT2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE) == 0:
            return True
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            return False
        if code not in (errno.ENOSYS, errno.EINVAL, errno.EPERM, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), str(target))
    try:
        os.link(source, target)
    except FileExistsError:
        return False
    return True


class BlockWriter:
    """Streams bytes to a temporary file while hashing them; ``finish`` publishes them."""

    def __init__(self, tmp_dir: Path, publish) -> None:  # publish(tmp_path) -> None
        self._file = tempfile.NamedTemporaryFile(dir=tmp_dir, delete=False, prefix="upload-")  # noqa: SIM115
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._publish = publish
        self.size = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._md5.update(data)
        self.size += len(data)

    def finish(self) -> tuple[int, str]:
        """Publish the bytes under their address; return (size, MD5 hex)."""
        self._file.close()
        try:
            self._publish(Path(self._file.name))
        finally:
            Path(self._file.name).unlink(missing_ok=True)
        return self.size, self._md5.hexdigest()

    def abort(self) -> None:
        self._file.close()
        Path(self._file.name).unlink(missing_ok=True)


@dataclass(frozen=True)
class StoredBlock:
    """One block found in a namespace: its address, size and when it was written (epoch seconds)."""

    address: str
    size: int
    written: float


class BlockStore(Protocol):
    scheme: str

    def writer(self, address: str) -> BlockWriter: ...

    def size(self, address: str) -> int | None: ...

    def read(self, address: str, start: int, end: int) -> Iterator[bytes]: ...

    def namespace_example(self) -> str: ...

    def list_blocks(self, namespace: str) -> Iterator[StoredBlock]:
        """Every block the server wrote under ``<namespace>/data/`` (nothing else is ever collected)."""
        ...

    def delete(self, addresses: list[str]) -> None:
        """Remove blocks; an address already gone is no error."""
        ...


class LocalBlockStore:
    """Blocks as files under ``root``; addresses look like ``local://<namespace>/data/<id>``."""

    scheme = "local"

    def __init__(self, root: Path, tmp_dir: Path) -> None:
        self.root = Path(root)
        self.tmp_dir = Path(tmp_dir)
        for directory in (self.root, self.tmp_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(directory, 0o700)

    def _path(self, address: str) -> Path:
        prefix = "local://"
        if not address.startswith(prefix):
            raise BadRequest(f"physical address {address!r} is not in the local block store (local://...)")
        relative = address[len(prefix) :].rstrip("/")
        parts = relative.split("/")
        if not relative or any(part in ("", ".", "..") for part in parts):
            raise BadRequest(f"invalid physical address {address!r}")
        return self.root.joinpath(*parts)

    def writer(self, address: str) -> BlockWriter:
        target = self._path(address)

        def publish(tmp_path: Path) -> None:
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not move_no_clobber(tmp_path, target):  # atomic, and never a clobber
                raise AlreadyWritten(address)

        return BlockWriter(self.tmp_dir, publish)

    def size(self, address: str) -> int | None:
        try:
            return self._path(address).stat().st_size
        except FileNotFoundError:
            return None

    def read(self, address: str, start: int, end: int) -> Iterator[bytes]:
        """Yield bytes ``start..end`` (inclusive) of the block."""
        try:
            handle = open(self._path(address), "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError as error:
            raise Gone(
                f"resource expired: the data at {address!r} is gone (removed by garbage collection)"
            ) from error
        with handle:
            handle.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                data = handle.read(min(CHUNK, remaining))
                if not data:
                    break
                remaining -= len(data)
                yield data

    def namespace_example(self) -> str:
        return "local://my-repository"

    def list_blocks(self, namespace: str) -> Iterator[StoredBlock]:
        data = self._path(f"{namespace.rstrip('/')}/{DATA_DIR}")
        try:
            entries = os.scandir(data)
        except FileNotFoundError:
            return
        prefix = f"{namespace.rstrip('/')}/{DATA_DIR}/"
        with entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    yield StoredBlock(prefix + entry.name, stat.st_size, stat.st_mtime)

    def delete(self, addresses: list[str]) -> None:
        for address in addresses:
            self._path(address).unlink(missing_ok=True)

    def clear_tmp(self) -> None:
        """Remove upload leftovers of a previous process (they were never published)."""
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self.tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)


class S3BlockStore:
    """Blocks as S3 objects; addresses look like ``s3://<bucket>/<key>``.

    Args:
        client: A boto3 S3 client (endpoint and credentials chosen by the caller).
        tmp_dir: Local spool for uploads, so memory stays bounded for any object size.
        default_namespace: ``s3://bucket/prefix`` offered as the example namespace.
    """

    scheme = "s3"

    def __init__(self, client, tmp_dir: Path, default_namespace: str) -> None:
        self.client = client
        self.tmp_dir = Path(tmp_dir)
        self.tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.default_namespace = default_namespace.rstrip("/")

    @staticmethod
    def _split(address: str) -> tuple[str, str]:
        if not address.startswith("s3://"):
            raise BadRequest(f"physical address {address!r} is not in the S3 block store (s3://...)")
        bucket, _, key = address[len("s3://") :].partition("/")
        if not bucket or not key:
            raise BadRequest(f"invalid physical address {address!r}: expected s3://bucket/key")
        return bucket, key

    def writer(self, address: str) -> BlockWriter:
        from botocore.exceptions import ClientError

        bucket, key = self._split(address)

        def publish(tmp_path: Path) -> None:
            try:
                if tmp_path.stat().st_size <= SINGLE_PUT_LIMIT:
                    with open(tmp_path, "rb") as body:
                        self.client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
                else:
                    self._multipart_put(tmp_path, bucket, key)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                    raise AlreadyWritten(address) from None
                raise

        return BlockWriter(self.tmp_dir, publish)

    def _multipart_put(self, tmp_path: Path, bucket: str, key: str) -> None:
        """Upload a large block in parts; completing it with ``If-None-Match: *`` keeps it no-clobber."""
        upload = self.client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        try:
            parts = []
            with open(tmp_path, "rb") as handle:
                number = 1
                while data := handle.read(SINGLE_PUT_LIMIT):
                    etag = self.client.upload_part(
                        Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=data
                    )["ETag"]
                    parts.append({"ETag": etag, "PartNumber": number})
                    number += 1
            self.client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}, IfNoneMatch="*"
            )
        except BaseException:
            self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
            raise

    def size(self, address: str) -> int | None:
        from botocore.exceptions import ClientError

        bucket, key = self._split(address)
        try:
            return self.client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def read(self, address: str, start: int, end: int) -> Iterator[bytes]:
        from botocore.exceptions import ClientError

        bucket, key = self._split(address)
        try:
            response = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise  # throttling, permissions, 5xx: not a verdict on the data
            raise Gone(
                f"resource expired: the data at {address!r} is gone (removed by garbage collection): {error}"
            ) from error
        body = response["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def namespace_example(self) -> str:
        return f"{self.default_namespace}/my-repository"

    def list_blocks(self, namespace: str) -> Iterator[StoredBlock]:
        bucket, key = self._split(f"{namespace.rstrip('/')}/{DATA_DIR}/")
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=key):
            for item in page.get("Contents", []):
                if "/" in item["Key"][len(key) :]:
                    continue
                written = item["LastModified"].timestamp()
                yield StoredBlock(f"s3://{bucket}/{item['Key']}", item["Size"], written)

    def delete(self, addresses: list[str]) -> None:
        by_bucket: dict[str, list[str]] = {}
        for address in addresses:
            bucket, key = self._split(address)
            by_bucket.setdefault(bucket, []).append(key)
        for bucket, keys in by_bucket.items():
            for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
                chunk = [{"Key": key} for key in keys[start : start + 1000]]
                response = self.client.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
                if response.get("Errors"):
                    first = response["Errors"][0]
                    raise OSError(f"S3 refused to delete {first.get('Key')!r}: {first.get('Message')}")

    def clear_tmp(self) -> None:
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self.tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)


def new_address(namespace: str) -> str:
    """A fresh, never-reused physical address inside a repository's storage namespace."""
    return f"{namespace.rstrip('/')}/{DATA_DIR}/{uuid.uuid4().hex}"
