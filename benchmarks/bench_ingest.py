"""Ingest throughput and alert latency against a server on loopback.

Starts the ingest (local Ray + Serve, on 127.0.0.1) unless ``--url`` is given, then drives
it from a separate load-generator process (raw asyncio HTTP/1.1; aiohttp for SSE):
  1. batched readings/s, durably acknowledged (JSON columnar or Arrow IPC batches);
  2. single-reading requests/s with p50/p99 latency;
  3. POST-to-SSE alert latency while (2) runs.
When it starts the server it also reports the server's CPU time per single-reading request
and how busy the whole machine was: on a shared 2-core machine that says whether the figures
are limited by this service or by everything else running.
``--compare-proxies`` runs the single-reading test once per proxy mode, each with its own
Ray instance (a subprocess: the mode is fixed when Ray starts), and prints them side by side.
``--compare-trivial`` runs the same single-reading client against a trivial Serve endpoint
(``benchmarks/trivial_serve.py``: parse the JSON, answer 200) and against the ingest, each in
its own Ray, in the same proxy mode, and prints the ingest's requests/s as a ratio of Serve's.
Usage: python benchmarks/bench_ingest.py [--proxy haproxy|python] [--seconds 10]
       [--loads batched,singles] [--compare-proxies] [--compare-trivial]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cgm_ray.cli.serve import start_ingest
from serve_apps.local import free_port

SECRET = "bench-secret-0123456789"
HEADERS = {"api-secret": hashlib.sha1(SECRET.encode()).hexdigest()}
MIN = 60_000
# Requests of the first seconds are not counted. In HAProxy mode Serve reloads HAProxy once
# the replicas register (after ``serve.run`` returns), and the old HAProxy closes the
# keep-alive connections it holds: each of the 24 connections failed once, ~0.1 s in.
WARMUP_S = 2.0


def _arrow_body(patients, sensors, ts, glucose) -> bytes:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    table = pa.table({"patient_id": patients, "sensor_id": sensors,
                      "ts_ms": pa.array(ts, pa.int64()), "glucose_mgdl": pa.array(glucose, pa.float32())})
    buf = io.BytesIO()
    with ipc.new_stream(buf, table.schema) as w:
        w.write_table(table)
    return buf.getvalue()


async def _drive(url: str, make_body, content_type: str, concurrency: int, seconds: float,
                 count_per_request: int) -> dict:
    """POST bodies on ``concurrency`` keep-alive connections for ``seconds`` after a warm-up
    of ``WARMUP_S``; time each one.

    A minimal HTTP/1.1 client on asyncio streams: the load generator shares the server's two
    cores, and aiohttp spent about 3x the CPU per request (what wrk would spare a server).
    """
    host, port = url.split("://", 1)[1].rstrip("/").split(":")
    head = (f"POST /api/v2/readings HTTP/1.1\r\nhost: {host}:{port}\r\n"
            f"api-secret: {HEADERS['api-secret']}\r\ncontent-type: {content_type}\r\n"
            "content-length: ").encode()
    latencies: list[float] = []
    errors = warm = 0
    measure_from = time.perf_counter() + WARMUP_S
    stop_at = measure_from + seconds
    seq = 0

    async def worker():
        nonlocal errors, seq, warm
        writer = None
        while time.perf_counter() < stop_at:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, int(port))
            seq += 1
            body = make_body(seq)
            started = time.perf_counter()
            try:
                writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
                status = await _read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
                status = None  # the server closed the connection: count it, reconnect
                writer.close()
                writer = None
            if started < measure_from:
                warm += status == 200
                continue
            if status == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1
        if writer is not None:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - measure_from
    lat = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {"requests_per_s": len(latencies) / elapsed,
            "readings_per_s": len(latencies) * count_per_request / elapsed,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "errors": errors, "answered": warm + len(latencies)}


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response (Content-Length or chunked body); return its status."""
    status = int((await reader.readline()).split(b" ", 2)[1])
    length, chunked = 0, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        await reader.readexactly(length)
        return status
    while (size := int((await reader.readline()).strip().split(b";")[0], 16)):
        await reader.readexactly(size + 2)
    await reader.readline()
    return status


def _batched(url: str, seconds: float, batch: int, concurrency: int, arrow: bool, q) -> None:
    n_sensors = 20_000
    base = int(time.time() * 1000) - 30 * 86_400_000
    patients = np.array([f"bp{k % 2000}" for k in range(n_sensors)])
    sensors = np.array([f"bs{k}" for k in range(n_sensors)])

    def body(seq: int) -> bytes:
        idx = (seq * batch + np.arange(batch)) % n_sensors
        rounds = (seq * batch + np.arange(batch)) // n_sensors
        ts = base + rounds * 5 * MIN
        g = 80 + (idx * 7 + rounds * 3) % 150
        if arrow:
            return _arrow_body(patients[idx].tolist(), sensors[idx].tolist(), ts.tolist(), g.tolist())
        return json.dumps({"patient_id": patients[idx].tolist(), "sensor_id": sensors[idx].tolist(),
                           "ts_ms": ts.tolist(), "glucose_mgdl": g.tolist()}).encode()

    ctype = "application/vnd.apache.arrow.stream" if arrow else "application/json"
    q.put(asyncio.run(_drive(url, body, ctype, concurrency, seconds, batch)))


def _singles(url: str, seconds: float, concurrency: int, q) -> None:
    base = int(time.time() * 1000) - 60 * 86_400_000

    def body(seq: int) -> bytes:
        k = seq % 5000
        return json.dumps({"patient_id": [f"sp{k % 500}"], "sensor_id": [f"ss{k}"],
                           "ts_ms": [base + (seq // 5000) * 5 * MIN], "glucose_mgdl": [120.0]}).encode()

    q.put(asyncio.run(_drive(url, body, "application/json", concurrency, seconds, 1)))


async def _alert_latency(url: str, seconds: float) -> dict:
    """Post readings that alternate a low alert on and off; time POST -> SSE event."""
    import aiohttp

    sent: dict[int, float] = {}
    got: list[float] = []
    base = int(time.time() * 1000) - 86_400_000
    async with aiohttp.ClientSession() as session:
        async def listen():
            async with session.get(f"{url}/api/v2/patients/alert-bench/alerts/stream",
                                   headers=HEADERS, timeout=aiohttp.ClientTimeout(total=None)) as r:
                async for raw in r.content:
                    line = raw.decode().strip()
                    if line.startswith("data: "):
                        event = json.loads(line[6:])
                        if event["type"] == "low" and event["ts_ms"] in sent:
                            got.append(time.perf_counter() - sent[event["ts_ms"]])

        task = asyncio.create_task(listen())
        await asyncio.sleep(1.0)
        stop_at = time.perf_counter() + seconds
        k = 0
        while time.perf_counter() < stop_at:
            ts = base + k * 5 * MIN
            g = 70.0 if k % 2 else 130.0  # low, then clear (130 is past the hysteresis band)
            if k % 2:
                sent[ts] = time.perf_counter()
            await session.post(f"{url}/api/v2/readings", headers=HEADERS, json={
                "patient_id": ["alert-bench"], "sensor_id": ["alert-sensor"], "ts_ms": [ts],
                "glucose_mgdl": [g]})
            k += 1
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        task.cancel()
    lat = np.array(got) * 1000 if got else np.array([np.nan])
    return {"alerts": len(got), "sent": len(sent), "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99))}


def _alerts(url: str, seconds: float, q) -> None:
    q.put(asyncio.run(_alert_latency(url, seconds)))


def _cpu_snapshot() -> tuple[float, int, int]:
    """(CPU seconds of this run's Serve replicas and HAProxy, machine busy and total jiffies).

    Only descendants of this process count (Ray's local processes are), so other Ray
    instances on the machine do not.
    """
    procs: dict[int, tuple[int, bytes, int]] = {}
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes()
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            procs[int(proc.name)] = (int(fields[1]), cmd, int(fields[11]) + int(fields[12]))
        except (OSError, ValueError, IndexError):
            continue  # not a process, or it exited meanwhile

    def ours(pid: int) -> bool:
        while pid > 1 and pid in procs:
            if pid == os.getpid():
                return True
            pid = procs[pid][0]
        return False

    server = sum(ticks for pid, (_, cmd, ticks) in procs.items()
                 if (cmd.startswith((b"ray::ServeReplica:ingest:", b"ray::ServeReplica:trivial:"))
                     or b"/bin/haproxy" in cmd)
                 and ours(pid))
    jiffies = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = jiffies[3] + jiffies[4]
    return server / os.sysconf("SC_CLK_TCK"), sum(jiffies) - idle, sum(jiffies)


def _run(target, *args):
    q = mp.Queue()
    p = mp.Process(target=target, args=(*args, q))
    p.start()
    return p, q


def _compare_proxies(args: argparse.Namespace) -> None:
    """The single-reading test in each proxy mode, each with its own Ray (a subprocess)."""
    results = {}
    for proxy in ("python", "haproxy"):
        out = subprocess.run([sys.executable, __file__, "--proxy", proxy, "--loads", "singles",
                              "--seconds", str(args.seconds), "--partitions",
                              str(args.partitions), "--concurrency", str(args.concurrency),
                              "--json"],
                             capture_output=True, text=True, check=True).stdout
        results[proxy] = json.loads(next(line for line in out.splitlines()
                                         if line.startswith('{"singles"')))
    print(f"{'proxy':<9} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'alert p99 ms':>13} "
          f"{'server CPU ms/req':>18} {'machine busy':>13}")
    for proxy, r in results.items():
        s, a = r["singles"], r["alerts"]
        print(f"{proxy:<9} {s['requests_per_s']:>7,.0f} {s['p50_ms']:>7.1f} {s['p99_ms']:>7.1f} "
              f"{a['p99_ms']:>13.1f} {r['server_cpu_ms_per_request']:>18.2f} "
              f"{r['machine_busy_pct']:>12.0f}%")
    py, ha = results["python"]["singles"], results["haproxy"]["singles"]
    print(f"single-reading requests/s: haproxy {ha['requests_per_s']:,.0f} vs python "
          f"{py['requests_per_s']:,.0f} ({ha['requests_per_s'] / py['requests_per_s']:.1f}x); "
          f"p99 {ha['p99_ms']:.1f} vs {py['p99_ms']:.1f} ms")


def _singles_json(args: argparse.Namespace, server: str) -> dict:
    """The single-reading test against ``server`` (ingest or trivial) in its own Ray."""
    out = subprocess.run([sys.executable, __file__, "--proxy", args.proxy, "--server", server,
                          "--loads", "singles", "--seconds", str(args.seconds), "--partitions",
                          str(args.partitions), "--concurrency", str(args.concurrency), "--json"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith('{"singles"')))


def _compare_trivial(args: argparse.Namespace) -> None:
    """The single-reading client against Serve alone, then against the ingest."""
    trivial, ours = _singles_json(args, "trivial"), _singles_json(args, "ingest")
    print(f"single-reading requests ({args.proxy} proxy, {args.concurrency} connections, "
          f"{args.seconds:g} s each, {os.cpu_count()} cores shared with the client)")
    print(f"{'server':<34} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>7} "
          f"{'server CPU ms/req':>18}")
    for label, r in (("trivial Serve endpoint", trivial), ("cgm-ray ingest", ours)):
        s = r["singles"]
        print(f"{label:<34} {s['requests_per_s']:>7,.0f} {s['p50_ms']:>7.1f} {s['p99_ms']:>7.1f} "
              f"{s['errors']:>7} {r['server_cpu_ms_per_request']:>18.2f}")
    ratio = ours["singles"]["requests_per_s"] / trivial["singles"]["requests_per_s"]
    print(f"cgm-ray / trivial Serve: {ratio:.2f}x requests/s; alert latency POST->SSE p99 "
          f"{ours['alerts']['p99_ms']:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an already running ingest (default: start one)")
    parser.add_argument("--proxy", choices=["haproxy", "python"], default="haproxy")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--ingress-replicas", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=24,
                        help="single-reading requests in flight (keep-alive connections)")
    parser.add_argument("--loads", default="batched,singles",
                        help="comma-separated: batched (JSON and Arrow), singles (with alerts)")
    parser.add_argument("--compare-proxies", action="store_true",
                        help="run the single-reading test in both proxy modes and compare")
    parser.add_argument("--compare-trivial", action="store_true",
                        help="run the single-reading test against a trivial Serve endpoint "
                        "and against the ingest, and print the ratio")
    parser.add_argument("--server", choices=["ingest", "trivial"], default="ingest",
                        help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compare_proxies:
        _compare_proxies(args)
        return
    if args.compare_trivial:
        _compare_trivial(args)
        return
    loads = set(args.loads.split(","))
    data = tempfile.mkdtemp(prefix="cgm-bench-ingest-")
    url = args.url
    if url is None and args.server == "trivial":
        from trivial_serve import start_trivial  # this script's folder is on sys.path

        from cgm_ray.cli.ray_runtime import init_ray
        from serve_apps.local import use_proxy

        use_proxy(args.proxy)
        init_ray(None)
        url = start_trivial("127.0.0.1", free_port())
        loads = {"singles"}
    elif url is None:
        os.environ["API_SECRET"] = SECRET
        url = start_ingest("127.0.0.1", free_port(), {
            "data_dir": f"{data}/ingest", "landing_dir": f"{data}/landing",
            "partitions": args.partitions, "ingress_replicas": args.ingress_replicas,
            "rate_limit_per_s": 1e9, "patient_rate_limit_per_s": 1e9}, args.proxy)
    if not args.json:
        print(f"cgm-ray ingest benchmark against {url} ({args.proxy} proxy, "
              f"{args.partitions} partitions, {os.cpu_count()} cores shared with the load "
              f"generator)")
    rows = []
    if "batched" in loads:
        for label, arrow in (("batched JSON", False), ("batched Arrow IPC", True)):
            p, q = _run(_batched, url, args.seconds, args.batch, 8, arrow)
            r = q.get(timeout=args.seconds + 120)  # a crashed load process must not hang us
            p.join()
            rows.append((f"{label} x{args.batch}", r))
    if "singles" in loads:
        cpu0 = _cpu_snapshot()
        p1, q1 = _run(_singles, url, args.seconds, args.concurrency)
        alerts = {"sent": 0, "alerts": 0, "p50_ms": float("nan"), "p99_ms": float("nan")}
        if args.server == "ingest":  # the trivial endpoint has no alerts to listen for
            p2, q2 = _run(_alerts, url, args.seconds - 2)
            alerts = q2.get(timeout=args.seconds + 120)
            p2.join()
        singles = q1.get(timeout=args.seconds + 120)
        p1.join()
        cpu1 = _cpu_snapshot()
        served = singles["answered"] + alerts["sent"] * 2  # warm-up included, as in the CPU
        cpu_ms = 1000 * (cpu1[0] - cpu0[0]) / max(served, 1)
        busy = 100 * os.cpu_count() * (cpu1[1] - cpu0[1]) / max(cpu1[2] - cpu0[2], 1)
        rows.append(("single-reading requests", singles))
    if args.json:
        print(json.dumps({"singles": singles, "alerts": alerts, "machine_busy_pct": busy,
                          "server_cpu_ms_per_request": cpu_ms}))
    else:
        print(f"{'load':<28} {'req/s':>9} {'readings/s':>11} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'errors':>7}")
        for label, r in rows:
            print(f"{label:<28} {r['requests_per_s']:>9,.0f} {r['readings_per_s']:>11,.0f} "
                  f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['errors']:>7}")
        if "singles" in loads:
            print(f"alert latency POST->SSE under the single-reading load: p50 "
                  f"{alerts['p50_ms']:.1f} ms, p99 {alerts['p99_ms']:.1f} ms "
                  f"({alerts['alerts']}/{alerts['sent']} alerts seen)")
            if args.url is None:
                print(f"during the single-reading load: server (Serve replicas + HAProxy) "
                      f"{cpu_ms:.2f} CPU ms/request; whole machine {busy:.0f}% busy "
                      f"(of {100 * os.cpu_count()}%)")
    if args.url is None:
        from ray import serve

        serve.shutdown()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
