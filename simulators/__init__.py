"""Vectorised physiology simulation: models, population, meals, therapy, sensors, engine.

The compiled kernels are cached on disk (numba ``cache=True``) in a directory named by a
hash of this package's sources: numba only notices edits to the file that defines a cached
function, so a kernel that calls helpers from another module could otherwise be served
stale after an edit. Set ``NUMBA_CACHE_DIR`` to choose another place.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba


def _cache_dir() -> str:
    digest = hashlib.sha1()
    for source in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(source.read_bytes())
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return str(root / "cgm-ray" / "numba" / digest.hexdigest()[:16])


if not os.environ.get("NUMBA_CACHE_DIR"):
    numba.config.CACHE_DIR = _cache_dir()
