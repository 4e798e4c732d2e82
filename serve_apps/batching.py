"""Coalesced writes: concurrent requests' readings sent with one call per partition.

The ingress gathers the requests that arrive within a few milliseconds, splits their
readings by owning partition (``cgm_ray.sharding``), sends each partition one table, and
attributes every partition's reply back to the requests that had rows in it:

- counts are exact per request (a partition reports which of its rows were new);
- a partition that fails (raises: nothing durable) fails only the requests that touched
  it, with 503 so they are retried;
- a partition that refuses a shared table (an unknown or conflicting sensor) stored none
  of it, so each request in it is retried alone and only the offending one is refused.

A request whose readings reached several partitions is acknowledged only if all of them
stored; the first refusal is its answer. A request is a table of checked readings, or a
``Reading`` (``serve_apps.one_reading``): those become one table per write. Plain Python
(asyncio, numpy, Arrow): the Serve deployment passes ``send``, tests pass a fake.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from cgm_ray.sharding import shards_of
from serve_apps.one_reading import Reading, readings_table
from serve_apps.replies import UNAVAILABLE, PartitionWrite, Rejection, WriteCounts

__all__ = ["Coalesced", "Send", "coalesce", "write_coalesced"]

# Sends one table to partition k; returns its reply, raises if the write is not durable.
Send = Callable[[int, pa.Table], Awaitable[PartitionWrite | Rejection]]


@dataclass(frozen=True)
class Coalesced:
    """Requests' tables as one: which request owns each row, and each partition's rows."""

    table: pa.Table
    owner: np.ndarray  # request index of every row of ``table``
    groups: list[tuple[int, np.ndarray]]  # (partition, its row numbers in ``table``, sorted)

    def rows_of(self, rows: np.ndarray) -> pa.Table:
        """The rows ``rows`` (sorted) of ``table``, without a copy when they are all of it."""
        return self.table if len(rows) == self.table.num_rows else self.table.take(rows)


def coalesce(requests: list[pa.Table | Reading], partitions: int) -> Coalesced:
    """Concatenate requests' readings and group the rows by owning partition."""
    table = _concat(requests)
    owner = np.repeat(np.arange(len(requests)),
                      [1 if isinstance(r, Reading) else r.num_rows for r in requests])
    if partitions == 1:
        return Coalesced(table, owner, [(0, np.arange(table.num_rows))])
    part = shards_of(table.column("patient_id"), partitions)
    return Coalesced(table, owner, [(int(k), np.flatnonzero(part == k)) for k in np.unique(part)])


def _concat(requests: list[pa.Table | Reading]) -> pa.Table:
    """Requests' rows in order; each run of one-reading requests is made one table."""
    pieces: list[pa.Table] = []
    run: list[Reading] = []
    for request in requests:
        if isinstance(request, Reading):
            run.append(request)
            continue
        if run:
            pieces.append(readings_table(run))
            run = []
        pieces.append(request)
    if run:
        pieces.append(readings_table(run))
    return pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]


async def _call(send: Send, partition: int, table: pa.Table) -> PartitionWrite | Rejection:
    try:
        return await send(partition, table)
    except Exception:  # not durable: none of these readings is acknowledged
        return UNAVAILABLE


async def write_coalesced(requests: list[pa.Table | Reading], partitions: int,
                          send: Send) -> list[WriteCounts | Rejection]:
    """Write every request's readings; each request's counts, or why it was refused."""
    batch = coalesce(requests, partitions)
    results: list[WriteCounts | Rejection] = [WriteCounts() for _ in requests]
    if len(batch.groups) == 1:  # one partition: no task to gather
        ((k, rows),) = batch.groups
        replies = [await _call(send, k, batch.rows_of(rows))]
    else:
        replies = await asyncio.gather(*(_call(send, k, batch.rows_of(rows))
                                         for k, rows in batch.groups))
    for (k, rows), reply in zip(batch.groups, replies):
        owners = batch.owner[rows]
        members = np.unique(owners)
        if isinstance(reply, PartitionWrite):
            accepted = np.bincount(owners[reply.accepted_rows], minlength=len(requests))
            total = np.bincount(owners, minlength=len(requests))
            for m in members:
                result = results[m]
                if isinstance(result, WriteCounts):
                    result.add(int(accepted[m]), int(total[m] - accepted[m]))
            continue
        if reply is UNAVAILABLE or len(members) == 1:
            for m in members:
                _refuse(results, m, reply)
            continue
        # Refused as a whole, so nothing was stored: retry each request's rows alone.
        alone = [m for m in members if isinstance(results[m], WriteCounts)]
        own_replies = await asyncio.gather(*(_call(send, k, batch.table.take(rows[owners == m]))
                                             for m in alone))
        for m, own in zip(alone, own_replies):
            if isinstance(own, PartitionWrite):
                results[m].add(own.accepted, own.duplicates)
            else:
                _refuse(results, m, own)
    return results


def _refuse(results: list[WriteCounts | Rejection], m: int, why: Rejection) -> None:
    if isinstance(results[m], WriteCounts):  # the first refusal is the request's answer
        results[m] = why
