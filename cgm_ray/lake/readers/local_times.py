"""Device-local wall-clock times to UTC epoch milliseconds, by a stated rule at daylight-saving changes.

Clarity, LibreView and OhioT1DM stamp every row with the device's clock and no offset (Tidepool
and Nightscout do so only where their own offset is missing); ``--tz`` names the zone that clock
kept (IANA, e.g. Europe/Berlin). Two kinds of wall-clock time have no single UTC instant, and
each is resolved by one rule and counted in the notes by reason, never dropped:

* repeated (the clocks went back: 02:00-02:59 twice on the last Sunday of October in Berlin):
  the first occurrence (summer time) is taken, unless the file's own order shows the clock
  went back. Within one stream (one sensor or event kind, in file order; a file written newest
  first is read from its end), a repeated time earlier than the repeated time before it starts
  the second occurrence, which lasts while the times stay in the repeated hour; a repeated time
  equal to the one just before it is that time's second occurrence.
* skipped (the clocks went forward: 02:00-02:59 on the last Sunday of March never happen in
  Berlin): read with the offset in force before the change, which shifts it forward by the gap
  (02:30 becomes 03:30 summer time), as a device that had not yet changed its clock meant it;
  this is PEP 495's ``fold=0``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo

from cgm_ray.lake.readers.base import ImportOptions

REPEATED_FIRST = "local time repeated when the clocks went back: first occurrence taken"
REPEATED_SECOND = "local time repeated when the clocks went back: second occurrence, by the file's order"
SKIPPED = "local time skipped when the clocks went forward: shifted forward by the gap"

_EPOCH = datetime(1970, 1, 1)
_MS = timedelta(milliseconds=1)


def local_to_utc_ms(local: Sequence[datetime], streams: Sequence[Hashable], zone: tzinfo,
                    notes: Counter[str]) -> list[int]:
    """UTC epoch milliseconds of naive wall-clock ``local`` times in ``zone``; ``streams[i]``
    is the stream row ``i`` belongs to (rows in file order). Repeated and skipped times are
    resolved by the module's rule and counted in ``notes``."""
    out = [0] * len(local)
    by_stream: dict[Hashable, list[int]] = defaultdict(list)
    for i, stream in enumerate(streams):
        by_stream[stream].append(i)
    for rows in by_stream.values():
        if _descending([local[i] for i in rows]):
            rows = rows[::-1]
        second = False  # inside the second pass through a repeated hour
        previous: datetime | None = None
        previous_repeated = False
        for i in rows:
            t = local[i]
            early, late = (t.replace(tzinfo=zone, fold=fold).utcoffset() for fold in (0, 1))
            assert early is not None and late is not None
            offset = early
            repeated = early > late
            if repeated:
                if previous_repeated and previous is not None and t < previous:
                    second = True
                later = second or t == previous
                offset = late if later else early
                notes[REPEATED_SECOND if later else REPEATED_FIRST] += 1
            else:
                second = False
                if early < late:
                    notes[SKIPPED] += 1
            out[i] = (t - _EPOCH - offset) // _MS
            previous, previous_repeated = t, repeated
    return out


def to_utc_ms(moments: Sequence[datetime], streams: Sequence[Hashable], options: ImportOptions,
              where: str, notes: Counter[str]) -> list[int]:
    """UTC epoch milliseconds of ``moments``: those with an offset as they say (the file's offset
    wins), naive ones as wall-clock times of ``--tz`` (ExportError naming ``where`` without it)."""
    out = [0] * len(moments)
    naive = []
    for i, moment in enumerate(moments):
        if moment.tzinfo is None:
            naive.append(i)
        else:
            out[i] = (moment.astimezone(UTC).replace(tzinfo=None) - _EPOCH) // _MS
    if naive:
        zone = options.zone(where)
        for i, ts_ms in zip(naive, local_to_utc_ms([moments[i] for i in naive],
                                                    [streams[i] for i in naive], zone, notes)):
            out[i] = ts_ms
    return out


def _descending(times: list[datetime]) -> bool:
    """Whether the stream is written newest first (more steps back than forward)."""
    steps = Counter((b > a) - (b < a) for a, b in zip(times, times[1:]))
    return steps[-1] > steps[1]


__all__ = ["REPEATED_FIRST", "REPEATED_SECOND", "SKIPPED", "local_to_utc_ms", "to_utc_ms"]
