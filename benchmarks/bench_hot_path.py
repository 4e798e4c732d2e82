"""CPU per single-reading upload in cgm-ray's own code: the hot route driven in-process.

``POST /api/v2/readings`` as the ingress replica runs it (``DirectRoutes`` over the v2
handler, the coalescer, a co-located partition, its write-ahead log and alert rules), called
as an ASGI app by ``--concurrency`` tasks on one event loop: no Ray, Serve, uvicorn or
sockets, so the figure is ours alone and steady from run to run (the HTTP benchmark's
requests/s move by ~10% on this shared machine). Two CPU figures: the event loop's thread
(what bounds a replica's requests/s) and the whole process (with the kernel workers that
sync the log). ``--fsync``: the log's sync in a kernel worker (the default), blocking on the
loop, or left out ("none", an experiment: what the sync costs).
Usage: python benchmarks/bench_hot_path.py [--requests 24000] [--concurrency 12]
       [--fsync kernel|loop|none]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import tempfile
import time

from serve_apps.config import IngestConfig
from serve_apps.direct_routes import DirectRoutes
from serve_apps.http_api import api
from serve_apps.v2_routes import CgmRayV2

SECRET = "bench-secret-0123456789"
SENSORS = 5_000  # as bench_ingest.py's single-reading load: 500 patients, 10 sensors each
WARMUP_REQUESTS = 2_400
DAY_MS, FIVE_MIN_MS = 86_400_000, 300_000


def _scope(body: bytes) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/api/v2/readings",
            "raw_path": b"/api/v2/readings", "root_path": "", "query_string": b"",
            "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
            "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                        (b"api-secret", hashlib.sha1(SECRET.encode()).hexdigest().encode()),
                        (b"content-length", str(len(body)).encode())]}


async def _drive(app: DirectRoutes, requests: int, concurrency: int, first_seq: int,
                 base_ms: int) -> None:
    """``requests`` one-reading uploads from ``concurrency`` tasks; raises on a non-200."""
    seqs = iter(range(first_seq, first_seq + requests))

    async def one(seq: int) -> None:
        k = seq % SENSORS
        body = json.dumps({"patient_id": [f"sp{k % 500}"], "sensor_id": [f"ss{k}"],
                           "ts_ms": [base_ms + (seq // SENSORS) * FIVE_MIN_MS],
                           "glucose_mgdl": [120.0]}).encode()
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[dict] = []

        async def receive() -> dict:
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        await app(_scope(body), receive, send)
        if sent[0]["status"] != 200:
            raise RuntimeError(f"request {seq}: {sent[0]['status']} {sent[1].get('body')}")

    async def worker() -> None:
        for seq in seqs:
            await one(seq)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _run(args: argparse.Namespace, data: str) -> dict:
    os.environ[IngestConfig().api_secret_env] = SECRET
    config = IngestConfig(data_dir=f"{data}/ingest", landing_dir=f"{data}/landing",
                          rate_limit_per_s=1e9, patient_rate_limit_per_s=1e9,
                          wal_fsync="kernel" if args.fsync == "kernel" else "loop")
    ingress = CgmRayV2([], config.model_dump())
    app = DirectRoutes(api, {("POST", "/api/v2/readings"): ingress.post_readings})
    base_ms = int(time.time() * 1000) - 20 * DAY_MS
    if args.fsync == "none":
        os.fdatasync = lambda fd: None  # this process only: what the log's sync costs
    await _drive(app, WARMUP_REQUESTS, args.concurrency, 0, base_ms)
    wal = ingress.partitions[0].core.wal
    rows0, commits0 = wal.appended_rows, wal.commits
    wall0, cpu0, loop0 = time.perf_counter(), time.process_time(), time.thread_time()
    await _drive(app, args.requests, args.concurrency, WARMUP_REQUESTS, base_ms)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"loop_cpu_us_per_request": 1e6 * (time.thread_time() - loop0) / args.requests,
            "cpu_us_per_request": 1e6 * cpu / args.requests,
            "wall_us_per_request": 1e6 * wall / args.requests,
            "rows_per_write": (wal.appended_rows - rows0) / max(1, wal.commits - commits0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=24_000)
    parser.add_argument("--concurrency", type=int, default=12,
                        help="requests in flight: about one write's worth under the HTTP load")
    parser.add_argument("--fsync", choices=["kernel", "loop", "none"], default="kernel",
                        help="the log's sync: in a kernel worker, blocking on the loop, or none")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cgm-bench-hot-path-") as data:
        r = asyncio.run(_run(args, data))
    print(f"hot path, {args.requests:,} one-reading uploads, {args.concurrency} in flight, "
          f"fsync {args.fsync}: {r['loop_cpu_us_per_request']:.1f} us CPU of the event loop's "
          f"thread ({r['cpu_us_per_request']:.1f} us the process's) and "
          f"{r['wall_us_per_request']:.1f} us wall a request, {r['rows_per_write']:.1f} "
          f"readings a write")


if __name__ == "__main__":
    main()
