"""Which vendor export a file is: by its content first, by its name second.

Each format of ``FORMATS`` says which file endings it comes as and recognises its own content
from the file's first characters (``HEAD_CHARS``, decompressed): a header line, a root element,
record types. The content decides: a Clarity export renamed ``readings.csv`` is still read as
one. The name only refuses: a file named as a vendor names its exports (``Clarity_Export_*``,
``*_glucose_*.csv``, ``*-ws-training.xml``) whose content is not that format's is an
``ExportError`` naming the columns the format needs, rather than being read as something else.
A file no format claims is left to the lake's column conventions (``cgm_ray.lake.sources``).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from cgm_ray.lake.readers import clarity, libreview, nightscout_dump, ohiot1dm, tidepool
from cgm_ray.lake.readers.base import ExportError, ExportFormat

FORMATS: tuple[ExportFormat, ...] = (clarity.FORMAT, libreview.FORMAT, tidepool.FORMAT,
                                     ohiot1dm.FORMAT, nightscout_dump.FORMAT)
HEAD_CHARS = 64 << 10  # enough for LibreView's header on row 3 and a few JSON records
EXPORT_SUFFIXES: tuple[str, ...] = tuple(dict.fromkeys(s for f in FORMATS for s in f.suffixes))


def export_suffix(file_name: str) -> str:
    """The file's last extension, lower case, under any ``.gz`` (``a.CSV.gz`` -> ``.csv``)."""
    name = PurePosixPath(file_name.replace("\\", "/")).name.lower()
    name = name.removesuffix(".gz")
    return PurePosixPath(name).suffix


def detect(file_name: str, head: str) -> ExportFormat | None:
    """The vendor format of a file named ``file_name`` beginning with ``head``, if any.

    ExportError when none recognises the content but the name is one a format gives its exports.
    """
    suffix = export_suffix(file_name)
    candidates = [f for f in FORMATS if suffix in f.suffixes]
    found = next((f for f in candidates if f.sniff(head)), None)
    if found is not None:
        return found
    base = PurePosixPath(file_name.replace("\\", "/")).name
    for f in candidates:
        if f.file_name is not None and f.file_name.search(base):
            raise ExportError("content", f"named like a {f.name} export but it is not one: "
                                         f"expected {f.expected}")
    return None


def expected_formats(suffix: str | None = None) -> str:
    """What each vendor format (of those coming as ``suffix``, default all) is recognised by."""
    return "; ".join(f"{f.name} ({f.expected})" for f in FORMATS
                     if suffix is None or suffix in f.suffixes)


__all__ = ["EXPORT_SUFFIXES", "FORMATS", "HEAD_CHARS", "detect", "export_suffix", "expected_formats"]
