"""Readers of real-world CGM exports for the lake: Dexcom Clarity, LibreView, Tidepool, OhioT1DM
and Nightscout dumps, one module each, recognised by ``detect`` from the file's content.

Each is a pure function from a file's bytes to Arrow tables (``ExportRows``): readings in
cgm-ray's columns, already mg/dL and UTC, and treatments as Nightscout treatment documents.
``cgm_ray.lake.sources.read_source`` is where the lake calls them.
"""

from cgm_ray.lake.readers.base import ExportError, ExportFormat, ExportRows, ImportOptions, zone_of
from cgm_ray.lake.readers.detect import (
    EXPORT_SUFFIXES,
    FORMATS,
    HEAD_CHARS,
    detect,
    expected_formats,
    export_suffix,
)

__all__ = ["EXPORT_SUFFIXES", "FORMATS", "HEAD_CHARS", "ExportError", "ExportFormat", "ExportRows",
           "ImportOptions", "detect", "export_suffix", "expected_formats", "zone_of"]
