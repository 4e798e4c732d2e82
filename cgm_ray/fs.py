"""Files on a local disk or any pyarrow filesystem (S3, GCS, ...), written atomically."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from cgm_ray.errors import ConfigError


def open_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path) of a local path (made absolute) or a pyarrow filesystem URI."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ConfigError(uri, f"cannot open: {exc}") from exc


def uri_for(base_uri: str, path: str) -> str:
    """``path`` on the filesystem ``base_uri`` names, as a URI another process can reopen.

    Local paths stay paths; others keep the base URI's scheme and query (an S3 endpoint,
    region or credentials), which ``FileSystem.from_uri`` needs again.
    """
    if "://" not in base_uri:
        return path
    scheme, rest = base_uri.split("://", 1)
    query = rest.split("?", 1)[1] if "?" in rest else ""
    return f"{scheme}://{path}" + (f"?{query}" if query else "")


def temp_path(path: str) -> str:
    """A unique hidden sibling of ``path``: dataset readers and the ETL skip dot files."""
    folder, name = path.rsplit("/", 1)
    return f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"


@contextlib.contextmanager
def atomic_path(fs: pafs.FileSystem, path: str) -> Iterator[str]:
    """A temporary sibling of ``path`` to write; moved onto ``path`` when the block succeeds,
    deleted when it fails, so readers see the old file or the whole new one, never a part
    (the move is atomic on local disks; object stores publish on upload anyway)."""
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    tmp = temp_path(path)
    try:
        yield tmp
        fs.move(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            fs.delete_file(tmp)
        raise


def write_bytes_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_path``)."""
    with atomic_path(fs, path) as tmp, fs.open_output_stream(tmp, compression=None) as fh:
        fh.write(data)


def write_parquet_atomic(fs: pafs.FileSystem, path: str, table: pa.Table,
                         **options: object) -> None:
    """``pq.write_table`` to ``path`` atomically (see ``atomic_path``)."""
    with atomic_path(fs, path) as tmp:
        pq.write_table(table, tmp, filesystem=fs, **options)
