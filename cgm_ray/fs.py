"""Files on a local disk or any pyarrow filesystem (S3, GCS, ...), written atomically."""

from __future__ import annotations

import os
import uuid

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


def write_bytes_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write ``data`` under a temporary name, then move it to ``path`` (atomic on local disks)."""
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    tmp = temp_path(path)
    with fs.open_output_stream(tmp) as fh:
        fh.write(data)
    fs.move(tmp, path)


def write_parquet_atomic(fs: pafs.FileSystem, path: str, table: pa.Table, **options) -> None:
    """``pq.write_table`` under a temporary name, then move it to ``path``."""
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    tmp = temp_path(path)
    pq.write_table(table, tmp, filesystem=fs, **options)
    fs.move(tmp, path)
