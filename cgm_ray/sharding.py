"""Which shard owns a patient: ``crc32(utf-8 patient_id) % n``, the same in every process.

The lake's buckets and the ingest's partitions both route by it, so a patient's readings
meet in one place without a shuffle. crc32 is stable across runs and machines, unlike
Python's salted ``hash``.
"""

from __future__ import annotations

import zlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def shard_of(patient_id: str, n: int) -> int:
    """The shard in ``[0, n)`` that owns ``patient_id``."""
    return zlib.crc32(patient_id.encode()) % n


def shards_of(patient_ids: pa.Array | pa.ChunkedArray, n: int) -> np.ndarray:
    """``shard_of`` of every row, hashing each distinct id once (int32 array)."""
    encoded = pc.dictionary_encode(patient_ids)
    if isinstance(encoded, pa.ChunkedArray):
        if not encoded.num_chunks:
            return np.zeros(0, np.int32)
        encoded = encoded.unify_dictionaries().combine_chunks()
    names = encoded.dictionary.to_pylist()
    if not names:
        return np.zeros(0, np.int32)
    per_name = np.array([shard_of(name, n) for name in names], np.int32)
    return per_name[encoded.indices.to_numpy(zero_copy_only=False)]
