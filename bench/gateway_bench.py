"""Gateway benchmark: latency Sluice's gateway adds, the highest rate it sustains, its memory, and
LiteLLM's proxy side by side on the same upstream and the same load, in one run.

Everything runs on loopback, in separate processes, pinned with ``taskset``:

    core 0: the scripted upstream (``python -m sluice.testing.upstream``, 20 ms per answer) and the
            load generator (this file, ``loadgen`` subcommand: open loop, constant arrival rate)
    core 1: the gateway under test (``sluice serve``, one uvicorn worker) or LiteLLM's proxy
            (``litellm --num_workers 1``); one at a time, the other idle

Added latency = percentile through the gateway − same percentile of direct calls to the upstream,
at the same offered rate in the same round (a difference of percentiles, not a percentile of
differences). Latency is counted from each request's *scheduled* send time, so a gateway that
falls behind is charged for the queueing it causes (no coordinated omission).

    .venv/bin/python bench/gateway_bench.py                 # full run (~16 min), writes bench/results/gateway.*
    .venv/bin/python bench/gateway_bench.py --quick         # smoke run, results not written
    .venv/bin/python bench/gateway_bench.py --no-litellm --rates 500 --max-rate 25 --results-name gateway.at500
    .venv/bin/python bench/gateway_bench.py --profile 20    # py-spy profile of the gateway at 1,000 req/s
    .venv/bin/python bench/gateway_bench.py --overload      # capacity, then 2x and 4x it: shed share, admitted p99

Overload mode (issue 10): finds the highest sustained rate of ``sluice serve`` (the ladder below),
then offers 2x and 4x that rate. Past capacity the gateway should answer the excess with a fast
503 (load shedding on event-loop lag and in-flight count) and keep the admitted requests' p99
under 100 ms; results in ``bench/results/gateway.overload.md/.json``.

LiteLLM is looked for in ``bench/.venv-litellm`` (``make bench-gateway`` creates it); py-spy too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = ROOT / ".venv" / "bin" / "python"
LITELLM_VENV = HERE / ".venv-litellm"
RESULTS = HERE / "results"
LOAD_CPU, GATEWAY_CPU = "0", "1"
UPSTREAM_MS = 20.0
RATES = (200, 500, 1000)
LADDER = (25, 50, 100, 150, 200, 300, 500, 750, 1000, 1250, 1500, 1750, 2000, 2500, 3000)
P99_BOUND_MS = 50.0          # sustained: p99 end to end ≤ 20 ms upstream + 30 ms, and ...
MAX_ERROR_SHARE = 0.001      # ... at most 0.1 % errors, and ...
MIN_ACHIEVED_SHARE = 0.98    # ... at least 98 % of the offered rate answered inside the window
QUIET_IDLE = 0.9             # both CPUs at least this idle before each measurement
MAX_FOREIGN_SHARE = 0.03     # processes outside the bench using more of a CPU than this disturb a measurement
MAX_REPEATS = 2              # a disturbed measurement is repeated up to this many times
TARGET_P99_ADDED_MS = 3.0    # at 500 req/s (issue 4)
BODY = {"messages": [{"role": "user", "content": "Summarise our refund policy for a customer in two lines."}],
        "max_tokens": 64, "temperature": 0}


# --- load generator (runs in its own process) --------------------------------------------------
_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


class _Exchange(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time. Far cheaper per request than a
    general client (aiohttp costs ~0.2 ms of CPU per request), so the generator sharing a core with
    the upstream still keeps to its schedule at the rates measured here."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.waiter: asyncio.Future | None = None
        self.need = -1  # bytes of head + body expected, -1 until the head is in

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.need < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            length = _CONTENT_LENGTH.search(self.buf[:end])
            self.need = end + 4 + int(length.group(1)) if length else -2  # -2: chunked, wait for the last chunk
        if (self.need >= 0 and len(self.buf) >= self.need) or (self.need == -2 and self.buf.endswith(b"0\r\n\r\n")):
            status = int(self.buf[9:12])
            self.buf, self.need = b"", -1
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(status)

    async def request(self, payload: bytes) -> int:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return await self.waiter


async def generate(url: str, model: str, token: str, rate: float, duration: float, warmup: float, timeout: float,
                   max_in_flight: int) -> dict[str, Any]:
    """Send POSTs at a constant arrival rate; latency from each request's scheduled time."""
    from urllib.parse import urlsplit

    import orjson

    u = urlsplit(url)
    body = orjson.dumps({**BODY, "model": model})
    payload = (f"POST {u.path} HTTP/1.1\r\nhost: {u.netloc}\r\ncontent-type: application/json\r\n"
               f"authorization: Bearer {token}\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body
    loop = asyncio.get_running_loop()
    idle: list[_Exchange] = []
    latencies: list[float] = []
    shed_latencies: list[float] = []  # 503 answers (load shedding): how fast the refusal came
    errors: dict[str, int] = {}
    in_flight = 0
    last_done = 0.0
    clock = time.perf_counter  # uvloop's loop.time() has millisecond resolution

    opened = 0  # connections the generator had to open (none idle): each costs the target an accept
    connect_ms: list[float] = []

    async def one(scheduled: float, measured: bool) -> None:
        nonlocal in_flight, last_done, opened
        in_flight += 1
        conn = None
        try:
            while idle and conn is None:  # the server may have closed a connection idle past its keep-alive
                conn = idle.pop()
                if conn.transport is None or conn.transport.is_closing():
                    conn = None
            if conn is None:
                opened += 1
                began = clock()
                conn = (await loop.create_connection(_Exchange, u.hostname, u.port))[1]
                connect_ms.append((clock() - began) * 1000)
            status = await asyncio.wait_for(conn.request(payload), timeout)
            idle.append(conn)
        except asyncio.TimeoutError:
            status = "timeout"
        except Exception as e:  # noqa: BLE001 - every request sent is counted: answered or an error
            status = type(e).__name__
        finally:
            in_flight -= 1
        if not isinstance(status, int) and conn is not None and conn.transport is not None:
            conn.transport.close()  # a timeout or a broken connection; an HTTP answer (a 503 too) keeps it, as SDKs do
        done = clock()
        if not measured:
            return
        if status == 200:
            latencies.append((done - scheduled) * 1000)
            last_done = done
        else:
            errors[str(status)] = errors.get(str(status), 0) + 1
            if status == 503:
                shed_latencies.append((done - scheduled) * 1000)

    tasks = set()
    total = int((warmup + duration) * rate)
    n_warm = int(warmup * rate)
    start = clock() + 0.05
    shed = 0
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        if in_flight >= max_in_flight:  # the target is hopelessly behind: count, do not queue
            shed += i >= n_warm
            continue
        t = asyncio.ensure_future(one(scheduled, i >= n_warm))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    window_end = start + total / rate
    if tasks:
        await asyncio.wait(tasks, timeout=timeout + 1)
    for c in idle:
        if c.transport is not None:
            c.transport.close()
    if shed:
        errors["shed_by_generator"] = shed
    ok = len(latencies)
    return {"rate": rate, "duration_s": duration, "sent": total - n_warm, "ok": ok, "errors": errors,
            "achieved_rps": round(ok / max(last_done - (start + warmup), duration), 1) if ok else 0.0,
            "late_s": round(max(0.0, last_done - window_end), 3), "connections_opened": opened,
            "connect_p99_ms": round(sorted(connect_ms)[int(0.99 * (len(connect_ms) - 1))], 3) if connect_ms else None,
            "latencies_ms": [round(x, 3) for x in latencies],
            "shed_latencies_ms": [round(x, 3) for x in shed_latencies]}


def loadgen_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="gateway_bench.py loadgen")
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--token", default="bench-not-a-secret")
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("--max-in-flight", type=int, default=1000)
    a = ap.parse_args(argv)
    import uvloop
    out = uvloop.run(generate(a.url, a.model, a.token, a.rate, a.duration, a.warmup, a.timeout, a.max_in_flight))
    os.set_blocking(sys.stdout.fileno(), True)  # the loop may leave the pipe non-blocking: a large report got cut
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()


# --- processes ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A pinned child process with its resident memory and CPU time read from /proc."""

    def __init__(self, name: str, cmd: list[str], cpu: str, *, env: dict[str, str] | None = None,
                 cwd: str | None = None, log: Path | None = None):
        self.name = name
        self.log = log
        out = open(log, "wb") if log else subprocess.DEVNULL
        self.p = subprocess.Popen(["taskset", "-c", cpu, *cmd], env={**os.environ, **(env or {})}, cwd=cwd,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def pids(self) -> list[int]:
        """The process and its descendants (LiteLLM may fork a worker)."""
        pids, todo = [], [self.p.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    todo += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
            except OSError:
                pass
        return pids

    def _status_kb(self, field: str) -> int:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total

    def rss_mb(self) -> float:
        return round(self._status_kb("VmRSS") / 1024, 1)

    def peak_rss_mb(self) -> float:
        return round(self._status_kb("VmHWM") / 1024, 1)

    def cpu_s(self) -> float:
        total = 0.0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except OSError:
                pass
        return total

    def wait_ready(self, url: str, timeout: float = 90) -> None:
        import httpx
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:] if self.log else ""
                raise RuntimeError(f"{self.name} exited with {self.p.returncode}: {tail}")
            try:
                if httpx.get(url, timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer {url} within {timeout} s")

    def settle(self, max_s: float = 30) -> None:
        """Wait until the process is idle (an overloaded proxy keeps working after the load stops)."""
        deadline = time.monotonic() + max_s
        while time.monotonic() < deadline:
            c0 = self.cpu_s()
            time.sleep(0.5)
            if self.cpu_s() - c0 < 0.025:
                return

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)


def start_upstream(tmp: Path) -> tuple[Proc, str]:
    port = free_port()
    proc = Proc("upstream", [str(PY), "-m", "sluice.testing.upstream", "--port", str(port),
                             "--latency-ms", str(UPSTREAM_MS)], LOAD_CPU, log=tmp / "upstream.log")
    base = f"http://127.0.0.1:{port}"
    proc.wait_ready(base + "/v1/models")
    return proc, base


def start_sluice(tmp: Path, upstream: str) -> tuple[Proc, str]:
    """A release pointing at the upstream, one deployment ``bench`` with it as stable, ``sluice serve``."""
    import yaml

    from sluice.release.loader import load_release
    from sluice.release.registry import register
    from sluice.store import open_store

    folder = tmp / "release"
    folder.mkdir()
    (folder / "release.yaml").write_text(yaml.safe_dump({
        "name": "bench", "version": "1.0",
        "components": {"responder": {"provider": "openai", "model": "scripted", "base_url": upstream + "/v1",
                                     "api_key_env": "SLUICE_BENCH_KEY", "timeout_s": 10,
                                     "params": {"temperature": 0, "max_tokens": 64}}}}))
    store_url = f"duckdb:///{tmp}/sluice.duckdb"
    store = open_store(store_url)
    register(store, load_release(folder))
    store.close()
    gateway = {"deployments": {"bench": {"stable": "bench@1.0"}}}
    (tmp / "sluice.yaml").write_text(yaml.safe_dump({"store": store_url, "gateway": gateway}))
    shutil.copy(tmp / "sluice.duckdb", tmp / "nostore.duckdb")  # DuckDB files take one process each
    (tmp / "nostore.yaml").write_text(yaml.safe_dump({"store": f"duckdb:///{tmp}/nostore.duckdb", "gateway": gateway}))
    port = free_port()
    proc = Proc("sluice", [str(ROOT / ".venv" / "bin" / "sluice"), "serve", "--port", str(port)], GATEWAY_CPU,
                env={"SLUICE_CONFIG": str(tmp / "sluice.yaml"), "SLUICE_BENCH_KEY": "bench-not-a-secret"},
                cwd=str(tmp), log=tmp / "sluice.log")
    base = f"http://127.0.0.1:{port}"
    proc.wait_ready(base + "/healthz")
    return proc, base


class _DiscardingWriter:
    """Diagnostic stand-in for the server's ``SpanWriter``: normalises each span exactly as the
    real writer does on the event loop, then drops it instead of committing it to DuckDB."""

    def __init__(self) -> None:
        from sluice.telemetry.config import TelemetrySettings
        from sluice.telemetry.normalize import Normalizer
        self.normalizer = Normalizer(TelemetrySettings())

    def submit(self, spans, **_: Any) -> None:
        self.normalizer.rows(spans)


def serve_without_store_writes(argv: list[str]) -> None:
    """``sluice serve`` with spans normalised but not committed: what the request path costs alone."""
    from sluice.config import load_settings
    from sluice.gateway.app import make_gateway
    from sluice.server.app import create_app
    from sluice.server.runner import serve_forever
    from sluice.store import open_store

    port = int(argv[0])
    settings = load_settings()
    store = open_store(settings.store)
    writer = _DiscardingWriter()
    gateway = make_gateway(settings.gateway, store, span_writer=writer)
    serve_forever(create_app(store, routers=[gateway.router], writer=writer), "127.0.0.1", port, "warning")


def start_sluice_nostore(tmp: Path) -> tuple[Proc, str]:
    """The diagnostic variant, on the copy of the store that ``start_sluice`` made."""
    port = free_port()
    proc = Proc("sluice-nostore", [str(PY), str(Path(__file__).resolve()), "serve-nostore", str(port)], GATEWAY_CPU,
                env={"SLUICE_CONFIG": str(tmp / "nostore.yaml"), "SLUICE_BENCH_KEY": "bench-not-a-secret"},
                cwd=str(tmp), log=tmp / "sluice-nostore.log")
    base = f"http://127.0.0.1:{port}"
    proc.wait_ready(base + "/healthz")
    return proc, base


def litellm_version() -> str | None:
    try:
        out = subprocess.run([str(LITELLM_VENV / "bin" / "python"), "-c",
                              "import importlib.metadata as m; print(m.version('litellm'))"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def start_litellm(tmp: Path, upstream: str) -> tuple[Proc, str, str]:
    """LiteLLM's proxy with one model ``bench`` passed through to the upstream as an OpenAI model."""
    import yaml

    cfg = tmp / "litellm.yaml"
    cfg.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "bench", "litellm_params": {
            "model": "openai/scripted", "api_base": upstream + "/v1", "api_key": "bench-not-a-secret"}}],
        "litellm_settings": {"telemetry": False, "drop_params": True},
    }))
    port = free_port()
    master_key = "sk-" + secrets.token_hex(32)  # LiteLLM refuses to start without one
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False",
           "NO_DOCS": "True", "LITELLM_MASTER_KEY": master_key}
    proc = Proc("litellm", [str(LITELLM_VENV / "bin" / "litellm"), "--config", str(cfg), "--host", "127.0.0.1",
                            "--port", str(port), "--num_workers", "1"], GATEWAY_CPU, env=env, cwd=str(tmp),
                log=tmp / "litellm.log")
    base = f"http://127.0.0.1:{port}"
    proc.wait_ready(base + "/health/liveliness", timeout=180)
    return proc, base, master_key


# --- measuring ---------------------------------------------------------------------------------
def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_ticks(cpu: str) -> tuple[int, int, int]:
    """(ticks spent running processes — user, nice, system —, idle + iowait, all) of one CPU."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            f = [int(x) for x in line.split()[1:]]
            return f[0] + f[1] + f[2], f[3] + f[4], sum(f)
    raise RuntimeError(f"no cpu{cpu} in /proc/stat")


def wait_quiet(cpus: tuple[str, ...] = (LOAD_CPU, GATEWAY_CPU), min_idle: float = QUIET_IDLE,
               max_s: float = 60.0) -> float:
    """Wait until every CPU of the bench is at least ``min_idle`` idle over half a second, so the
    previous target's backlog (or a neighbour's burst on the shared machine) does not bleed into
    the next measurement; returns the seconds waited (gives up after ``max_s``)."""
    t0 = time.monotonic()
    while True:
        before = {c: cpu_ticks(c) for c in cpus}
        time.sleep(0.5)
        after = {c: cpu_ticks(c) for c in cpus}
        idle = [(after[c][1] - before[c][1]) / max(1, after[c][2] - before[c][2]) for c in cpus]
        if min(idle) >= min_idle or time.monotonic() - t0 > max_s:
            return round(time.monotonic() - t0, 1)


def kernel_threads_cpu_s() -> dict[str, tuple[str, float]]:
    """pid -> (CPU it last ran on, CPU seconds) of the kernel's own threads: workers flushing the
    store's WAL writes among them, work the target causes rather than a neighbour's."""
    out: dict[str, tuple[str, float]] = {}
    hz = os.sysconf("SC_CLK_TCK")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[6]) & 0x00200000:  # PF_KTHREAD
            out[pid] = (fields[36], (int(fields[11]) + int(fields[12])) / hz)
    return out


def kernel_delta(before: dict[str, tuple[str, float]], after: dict[str, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds the kernel's threads used between two snapshots, by CPU."""
    by_cpu: dict[str, float] = {}
    for pid, (cpu, s) in after.items():
        by_cpu[cpu] = by_cpu.get(cpu, 0.0) + s - before.get(pid, (cpu, 0.0))[1]
    return by_cpu


def _children_cpu_s() -> float:
    import resource
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def load(url: str, model: str, rate: float, duration: float, warmup: float, token: str = "bench-not-a-secret",
         max_in_flight: int = 1000) -> dict[str, Any]:
    cmd = ["taskset", "-c", LOAD_CPU, str(PY), str(Path(__file__).resolve()), "loadgen", "--url", url,
           "--model", model, "--token", token, "--rate", str(rate), "--duration", str(duration), "--warmup", str(warmup),
           "--max-in-flight", str(max_in_flight)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=warmup + duration + 60)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def pct(sorted_ms: list[float], q: float) -> float | None:
    if not sorted_ms:
        return None
    return round(sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))], 3)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the rounds of one (target, rate)."""
    lat = sorted(x for r in runs for x in r["latencies_ms"])
    sent = sum(r["sent"] for r in runs)
    errors: dict[str, int] = {}
    for r in runs:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    out = {"sent": sent, "ok": len(lat), "errors": errors, "error_share": round(sum(errors.values()) / max(sent, 1), 4),
           "achieved_rps": round(min(r["achieved_rps"] for r in runs), 1),
           "p50_ms": pct(lat, 0.50), "p90_ms": pct(lat, 0.90), "p99_ms": pct(lat, 0.99),
           "max_ms": round(lat[-1], 3) if lat else None}
    for key in ("cpu_ms_per_req", "rss_mb_after"):
        vals = [r[key] for r in runs if r.get(key) is not None]
        out[key] = round(max(vals), 3) if vals else None
    out["loadavg"] = [r["loadavg"] for r in runs]
    out["foreign_cpu_share"] = [r.get("foreign_cpu_share") for r in runs]
    out["disturbed"] = [d for r in runs for d in r.get("disturbed", ())]
    return out


def sustained(s: dict[str, Any], rate: float) -> bool:
    return (s["p99_ms"] is not None and s["p99_ms"] <= P99_BOUND_MS and s["error_share"] <= MAX_ERROR_SHARE
            and s["achieved_rps"] >= MIN_ACHIEVED_SHARE * rate)


all_runs: list[dict[str, Any]] = []  # every kept measurement of this process, for ``quiet_summary``


def quiet_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    kept = [max(r["foreign_cpu_share"].values()) for r in runs]
    return {"repeated": sum(len(r["disturbed"]) for r in runs),
            "kept_disturbed": sum(1 for x in kept if x > MAX_FOREIGN_SHARE),
            "max_foreign": max(kept, default=0.0)}


def measure(target: dict[str, Any], rate: float, duration: float, warmup: float,
            upstream: "Proc | None" = None) -> dict[str, Any]:
    """One measurement; repeated (up to ``MAX_REPEATS`` times) while processes outside the bench
    took more than ``MAX_FOREIGN_SHARE`` of either CPU during it (the machine is shared). The
    attempts set aside are kept under ``disturbed``."""
    disturbed: list[dict[str, Any]] = []
    while True:
        r = _measure_once(target, rate, duration, warmup, upstream)
        if max(r["foreign_cpu_share"].values()) <= MAX_FOREIGN_SHARE or len(disturbed) >= MAX_REPEATS:
            r["disturbed"] = disturbed
            all_runs.append(r)
            return r
        disturbed.append({k: r[k] for k in ("foreign_cpu_share", "loadavg")} | {
            "p99_ms": pct(sorted(r["latencies_ms"]), .99)})
        print(f"    disturbed (foreign CPU {r['foreign_cpu_share']}), repeating", flush=True)


def _measure_once(target: dict[str, Any], rate: float, duration: float, warmup: float,
                  upstream: "Proc | None") -> dict[str, Any]:
    proc: Proc | None = target.get("proc")
    if proc:
        proc.settle()
    waited = wait_quiet()
    avg = loadavg()
    c0 = proc.cpu_s() if proc else 0.0
    u0, k0 = (upstream.cpu_s() if upstream else 0.0), _children_cpu_s()
    t0 = {c: cpu_ticks(c) for c in (LOAD_CPU, GATEWAY_CPU)}
    kt0 = kernel_threads_cpu_s()
    r = load(target["url"], target["model"], rate, duration, warmup, target.get("token", "bench-not-a-secret"))
    t1 = {c: cpu_ticks(c) for c in (LOAD_CPU, GATEWAY_CPU)}
    kernel = kernel_delta(kt0, kernel_threads_cpu_s())
    hz = os.sysconf("SC_CLK_TCK")
    own = {GATEWAY_CPU: (proc.cpu_s() - c0) if proc else 0.0,
           LOAD_CPU: (upstream.cpu_s() - u0 if upstream else 0.0) + (_children_cpu_s() - k0)}
    # CPU time of processes other than the target, the upstream, the load generator and the kernel's threads, per CPU
    r["foreign_cpu_share"] = {c: round(max(0.0, (t1[c][0] - t0[c][0]) / hz - own[c] - kernel.get(c, 0.0))
                                       / max(1e-9, (t1[c][2] - t0[c][2]) / hz), 3) for c in t0}
    r["loadavg"] = avg
    r["quiet_wait_s"] = waited
    if proc:
        r["cpu_ms_per_req"] = round((proc.cpu_s() - c0) * 1000 / max(1, r["sent"] + int(warmup * rate)), 3)
        r["rss_mb_after"] = proc.rss_mb()
    print(f"  {target['name']:8s} {rate:6.0f}/s  ok {r['ok']:6d}  err {sum(r['errors'].values()):5d}  "
          f"p50 {pct(sorted(r['latencies_ms']), .5)}  p99 {pct(sorted(r['latencies_ms']), .99)} ms  "
          f"load {avg}  foreign CPU {r['foreign_cpu_share']}", flush=True)
    return r


# --- the run -----------------------------------------------------------------------------------
def start_targets(tmp: Path, upstream: str, with_litellm: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    targets = [{"name": "direct", "url": upstream + "/v1/chat/completions", "model": "scripted", "proc": None}]
    proc, base = start_sluice(tmp, upstream)
    targets.append({"name": "sluice", "url": base + "/v1/chat/completions", "model": "bench", "proc": proc})
    proc, base = start_sluice_nostore(tmp)
    targets.append({"name": "sluice-nostore", "url": base + "/v1/chat/completions", "model": "bench", "proc": proc})
    info: dict[str, Any] = {"version": None, "status": "not run (--no-litellm)"}
    if with_litellm:
        info["version"] = litellm_version()
        if info["version"] is None:
            info["status"] = f"not installed: {LITELLM_VENV}/bin/python has no litellm (make bench-gateway creates it)"
        else:
            try:
                proc, base, key = start_litellm(tmp, upstream)
                targets.append({"name": "litellm", "url": base + "/v1/chat/completions", "model": "bench",
                                "proc": proc, "token": key})
                info["status"] = "ran"
            except RuntimeError as e:
                info["status"] = f"did not start: {str(e)[-600:]}"
    return targets, info


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="sluice-gwbench-"))
    upstream_proc, upstream = start_upstream(tmp)
    procs = [upstream_proc]
    result: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(), "upstream_latency_ms": UPSTREAM_MS,
        "pinning": f"gateway or LiteLLM on CPU {GATEWAY_CPU}; upstream and load generator on CPU {LOAD_CPU}",
        "load_generator": "open loop, constant arrival rate, asyncio + uvloop with a minimal keep-alive HTTP/1.1 client, "
                          "in its own process; "
                          "latency from each request's scheduled send time; 10 s request timeout",
        "duration_s": args.duration, "warmup_s": args.warmup, "rounds": args.rounds,
        "sustained_rule": f"p99 <= {P99_BOUND_MS} ms end to end, errors <= {MAX_ERROR_SHARE:.1%}, "
                          f"answered >= {MIN_ACHIEVED_SHARE:.0%} of the offered rate",
        "loadavg_start": loadavg(), "source": source_state()}
    try:
        targets, result["litellm"] = start_targets(tmp, upstream, not args.no_litellm)
        procs += [t["proc"] for t in targets if t["proc"]]
        for t in targets:  # open connections, import lazily loaded code
            load(t["url"], t["model"], 50, 1, 1, t.get("token", "bench-not-a-secret"))
        result["rss_idle_mb"] = {t["name"]: t["proc"].rss_mb() for t in targets if t["proc"]}

        raw: dict[tuple[str, float], list[dict[str, Any]]] = {}
        for rnd in range(args.rounds):
            print(f"round {rnd + 1}/{args.rounds}", flush=True)
            for rate in args.rates:
                for t in targets:  # interleaved, so drift in machine load hits every target alike
                    raw.setdefault((t["name"], rate), []).append(measure(t, rate, args.duration, args.warmup, upstream_proc))
        latency: dict[str, Any] = {}
        for rate in args.rates:
            row = {t["name"]: summarise(raw[(t["name"], rate)]) for t in targets}
            for name in row:
                if name != "direct" and row[name]["p50_ms"] is not None:
                    row[name]["added_p50_ms"] = round(row[name]["p50_ms"] - row["direct"]["p50_ms"], 3)
                    row[name]["added_p99_ms"] = round(row[name]["p99_ms"] - row["direct"]["p99_ms"], 3)
            latency[str(rate)] = row
        result["latency"] = latency

        print("highest sustained rate", flush=True)
        result["max_sustained"] = {}
        for t in targets:
            steps, best = [], 0
            for rate in (r for r in LADDER if r <= args.max_rate):
                s = summarise(raw[(t["name"], rate)]) if (t["name"], rate) in raw else \
                    summarise([measure(t, rate, args.duration, args.warmup, upstream_proc)])
                ok = sustained(s, rate)
                if not ok:  # one stall of a shared machine should not end the ladder: a rung fails twice
                    s = summarise([measure(t, rate, args.duration, args.warmup, upstream_proc)])
                    ok = sustained(s, rate)
                steps.append({"rate": rate, "ok": ok, "p99_ms": s["p99_ms"], "error_share": s["error_share"],
                              "achieved_rps": s["achieved_rps"], "cpu_ms_per_req": s["cpu_ms_per_req"]})
                if not ok:
                    break
                best = rate
            result["max_sustained"][t["name"]] = {"rate": best, "ladder_top": best == max(
                r for r in LADDER if r <= args.max_rate), "steps": steps}
        result["rss_mb"] = {t["name"]: {"idle": result["rss_idle_mb"][t["name"]], "after": t["proc"].rss_mb(),
                                        "peak": t["proc"].peak_rss_mb()} for t in targets if t["proc"]}
        del result["rss_idle_mb"]
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result["loadavg_end"] = loadavg()
    result["quiet"] = quiet_summary(all_runs)
    result["targets"] = verdicts(result)
    return result


OVERLOAD_P99_MS = 100.0  # admitted requests past capacity (issue 10)


def overload(args: argparse.Namespace) -> dict[str, Any]:
    """Capacity of ``sluice serve``, then 2x and 4x it: what is shed, how fast, and the admitted p99."""
    tmp = Path(tempfile.mkdtemp(prefix="sluice-gwbench-overload-"))
    upstream_proc, upstream = start_upstream(tmp)
    procs = [upstream_proc]
    result: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "pinning": f"gateway on CPU {GATEWAY_CPU}; upstream and load generator on CPU {LOAD_CPU}",
        "upstream_latency_ms": UPSTREAM_MS, "duration_s": args.duration, "warmup_s": args.warmup,
        "loadavg_start": loadavg(), "source": source_state()}
    try:
        proc, base = start_sluice(tmp, upstream)
        procs.append(proc)
        target = {"name": "sluice", "url": base + "/v1/chat/completions", "model": "bench", "proc": proc}
        load(target["url"], "bench", 50, 1, 1)
        capacity = args.capacity
        steps = []
        if not capacity:
            for rate in (r for r in LADDER if r <= args.max_rate):
                s = summarise([measure(target, rate, args.duration, args.warmup, upstream_proc)])
                steps.append({"rate": rate, "ok": sustained(s, rate), "p99_ms": s["p99_ms"],
                              "error_share": s["error_share"]})
                if not steps[-1]["ok"]:
                    break
                capacity = rate
        result["capacity_rps"], result["capacity_steps"] = capacity, steps
        rows = []
        for multiple in args.multiples:
            rate = capacity * multiple
            before = _shed_counters(base)
            r = load(target["url"], "bench", rate, args.duration, args.warmup, max_in_flight=50_000)
            after = _shed_counters(base)
            admitted = sorted(r["latencies_ms"])
            shed = sorted(r["shed_latencies_ms"])
            other = {k: v for k, v in r["errors"].items() if k != "503"}
            row = {"multiple": multiple, "offered_rps": rate, "sent": r["sent"], "admitted": len(admitted),
                   "admitted_rps": r["achieved_rps"], "shed": len(shed),
                   "shed_share": round(len(shed) / max(r["sent"], 1), 4), "other_errors": other,
                   "admitted_p50_ms": pct(admitted, .5), "admitted_p99_ms": pct(admitted, .99),
                   "shed_p50_ms": pct(shed, .5), "shed_p99_ms": pct(shed, .99), "loadavg": loadavg(),
                   "connections_opened": r["connections_opened"], "connect_p99_ms": r["connect_p99_ms"],
                   "gateway_counters": {k: after.get(k, 0) - before.get(k, 0) for k in after}}
            row["ok"] = row["admitted_p99_ms"] is not None and row["admitted_p99_ms"] <= OVERLOAD_P99_MS
            print(f"  {multiple}x = {rate}/s: admitted {row['admitted']} (p99 {row['admitted_p99_ms']} ms), "
                  f"shed {row['shed']} (p99 {row['shed_p99_ms']} ms), other errors {other}", flush=True)
            rows.append(row)
        result["overload"] = rows
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result["loadavg_end"] = loadavg()
    return result


def _shed_counters(base: str) -> dict[str, float]:
    """The gateway's own shedding counters (``GET /metrics``; the bench store has no keys)."""
    import urllib.request

    wanted = ("sluice_gateway_shed_total", "sluice_gateway_shed_lag_total", "sluice_gateway_shed_early_total",
              "sluice_gateway_requests_total")
    out: dict[str, float] = {}
    try:
        text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in wanted:
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def overload_markdown(r: dict[str, Any]) -> str:
    lines = [f"# Gateway under overload ({r['when']})", "",
             f"{r['machine']}; {r['pinning']}; upstream {r['upstream_latency_ms']:g} ms per answer; "
             f"{r['duration_s']:g} s measured per rate after {r['warmup_s']:g} s warm-up; "
             f"load average {r['loadavg_start']} → {r['loadavg_end']}.", "",
             f"Capacity (highest sustained rate: p99 ≤ {P99_BOUND_MS:g} ms, errors ≤ {MAX_ERROR_SHARE:.1%}): "
             f"**{r['capacity_rps']}/s**.", "",
             "| offered | admitted (req/s) | admitted p50 / p99 | shed (503) | shed p50 / p99 | other errors | "
             f"connections opened (connect p99) | admitted p99 ≤ {OVERLOAD_P99_MS:g} ms |",
             "|---|---|---|---|---|---|---|---|"]
    for row in r["overload"]:
        lines.append(f"| {row['multiple']}× = {row['offered_rps']}/s | {row['admitted']} ({row['admitted_rps']}) | "
                     f"{row['admitted_p50_ms']} / {row['admitted_p99_ms']} ms | {row['shed']} ({row['shed_share']:.1%}) | "
                     f"{row['shed_p50_ms']} / {row['shed_p99_ms']} ms | {row['other_errors'] or '–'} | "
                     f"{row.get('connections_opened', '–')} ({row.get('connect_p99_ms', '–')} ms) | "
                     f"{'yes' if row['ok'] else '**no**'} |")
    lines += ["", "Gateway counters per rate (`/metrics` deltas; `shed_lag` = shed for CPU saturation or event-loop "
              "lag, `shed_early` = refused by the HTTP protocol before any request handling): " + "; ".join(
        f"{row['multiple']}×: {row.get('gateway_counters')}" for row in r["overload"])]
    return "\n".join(lines) + "\n"


def source_state() -> dict[str, Any]:
    """The commit measured, and which gateway/telemetry files differed from it (others edit them live)."""
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "uncommitted": git("status", "--porcelain", "--", "src/sluice/gateway", "src/sluice/telemetry",
                               "src/sluice/server", "src/sluice/providers").splitlines()}


def verdicts(r: dict[str, Any]) -> dict[str, Any]:
    at500 = r["latency"].get("500", {}).get("sluice", {})
    out: dict[str, Any] = {"p99_added_ms_at_500_max": TARGET_P99_ADDED_MS,
                           "p99_added_ms_at_500": at500.get("added_p99_ms"),
                           "p99_added_met": at500.get("added_p99_ms") is not None
                           and at500["added_p99_ms"] <= TARGET_P99_ADDED_MS}
    if "litellm" in r["max_sustained"]:
        out["throughput_above_litellm"] = r["max_sustained"]["sluice"]["rate"] > r["max_sustained"]["litellm"]["rate"]
        # failed requests count as slower than any answer: compare (error share, p99), so a proxy that
        # answers few requests fast does not win on the p99 of the few
        def rank(x: dict[str, Any]) -> tuple[float, float]:
            return (round(x["error_share"], 3), x["p99_ms"] if x["p99_ms"] is not None else float("inf"))
        out["p99_below_litellm_at_every_rate"] = all(rank(row["sluice"]) < rank(row["litellm"])
                                                     for row in r["latency"].values())
    return out


def markdown(r: dict[str, Any]) -> str:
    def ms(v: Any) -> str:
        return "–" if v is None else f"{v:.2f}"

    names = [n for n in ("sluice", "sluice-nostore", "litellm") if n in next(iter(r["latency"].values()))]
    quiet = r["quiet"]
    lines = [f"# Gateway benchmark ({r['when']})", "",
             f"{r['machine']}, Python {r['python']}; upstream answers in {r['upstream_latency_ms']:.0f} ms; "
             f"{r['pinning']}. Load generator: {r['load_generator']}. {r['rounds']} round(s) of "
             f"{r['duration_s']:.0f} s per rate (after {r['warmup_s']:.0f} s warm-up), pooled. "
             f"Load average at start {r['loadavg_start']}, at end {r['loadavg_end']}. "
             f"LiteLLM {r['litellm']['version'] or ''}: {r['litellm']['status']}. Source: commit "
             f"{r['source']['commit']}" + (f", with uncommitted changes in {', '.join(x[3:] for x in r['source']['uncommitted'])}"
                                           if r["source"]["uncommitted"] else "") + ".", "",
             f"Shared machine: before each measurement the bench waits until both CPUs are ≥ {QUIET_IDLE:.0%} idle; "
             f"a measurement during which processes outside the bench used more than {MAX_FOREIGN_SHARE:.0%} of "
             f"either CPU is repeated (up to {MAX_REPEATS} times). This run: {quiet['repeated']} measurement(s) "
             f"repeated, {quiet['kept_disturbed']} kept although disturbed (repeats exhausted); the most foreign CPU "
             f"in a kept measurement: {quiet['max_foreign']:.1%}.", "",
             "`sluice-nostore` is a diagnostic variant, not a product: the same gateway and app with spans "
             "normalised but not committed to DuckDB, to separate the request path from the span writer.", "",
             "## Added latency (through the gateway − direct to the upstream)", "",
             "| req/s | direct p50 / p99 | " + " | ".join(f"{n} p50 / p99" for n in names) + " | "
             + " | ".join(f"{n} added p50 / p99" for n in names) + " | "
             + " | ".join(f"{n} errors" for n in names) + " | " + " | ".join(f"{n} CPU/req" for n in names) + " |",
             "|---" * (2 + 4 * len(names)) + "|"]
    for rate, row in r["latency"].items():
        d = row["direct"]
        lines.append(f"| {rate} | {ms(d['p50_ms'])} / {ms(d['p99_ms'])} | "
                     + " | ".join(f"{ms(row[n]['p50_ms'])} / {ms(row[n]['p99_ms'])}" for n in names) + " | "
                     + " | ".join(f"**{ms(row[n].get('added_p50_ms'))} / {ms(row[n].get('added_p99_ms'))}**"
                                  for n in names) + " | "
                     + " | ".join(f"{row[n]['error_share']:.1%}" for n in names) + " | "
                     + " | ".join(f"{ms(row[n]['cpu_ms_per_req'])} ms" for n in names) + " |")
    lines += ["", "All latencies in ms. Added = difference of the percentiles at the same offered rate.", "",
              f"## Highest sustained rate ({r['sustained_rule']})", "",
              "| target | sustained req/s | ladder (req/s: p99 ms, errors) |", "|---|---|---|"]
    for name, m in r["max_sustained"].items():
        steps = ", ".join(f"{s['rate']}: {ms(s['p99_ms'])}, {s['error_share']:.1%}{'' if s['ok'] else ' ✗'}"
                          for s in m["steps"])
        top = " (top of this run's ladder: the target may go higher)" if m["ladder_top"] else ""
        lines.append(f"| {name} | {m['rate']}{top} | {steps} |")
    lines += ["", "## Resident memory (MiB)", "", "| process | idle | after the run | peak |", "|---|---|---|---|"]
    for name, m in r["rss_mb"].items():
        lines.append(f"| {name} | {m['idle']} | {m['after']} | {m['peak']} |")
    t = r["targets"]
    lines += ["", "## Targets", "",
              f"- p99 added latency at 500 req/s ≤ {t['p99_added_ms_at_500_max']} ms: "
              f"{ms(t['p99_added_ms_at_500'])} ms — {'met' if t['p99_added_met'] else 'NOT met'}"]
    if "throughput_above_litellm" in t:
        lines.append(f"- higher sustained throughput than LiteLLM: {'met' if t['throughput_above_litellm'] else 'NOT met'}")
        lines.append(f"- lower p99 than LiteLLM at every rate (fewer errors first, then p99): "
                     f"{'met' if t['p99_below_litellm_at_every_rate'] else 'NOT met'}")
    return "\n".join(lines) + "\n"


# --- profile -----------------------------------------------------------------------------------
def profile(seconds: float, rate: float) -> None:
    """py-spy on ``sluice serve`` and on the no-store variant while each serves ``rate`` req/s."""
    spy = shutil.which("py-spy") or str(LITELLM_VENV / "bin" / "py-spy")
    tmp = Path(tempfile.mkdtemp(prefix="sluice-gwprof-"))
    upstream_proc, upstream = start_upstream(tmp)
    procs = [upstream_proc]
    sections = [f"# Gateway profiles ({time.strftime('%Y-%m-%d %H:%M')})", "",
                f"py-spy {subprocess.run([spy, '--version'], capture_output=True, text=True).stdout.strip()}, "
                "Python frames, non-blocking sampling at 250 Hz, idle threads excluded; the gateway pinned "
                f"to CPU {GATEWAY_CPU}, py-spy, load generator and upstream on CPU {LOAD_CPU}. Collapsed stacks "
                "in gateway.profile.<variant>.txt (flamegraph.pl or speedscope read them).", ""]
    try:
        proc, base = start_sluice(tmp, upstream)
        procs.append(proc)
        for variant in ("sluice", "sluice-nostore"):
            if variant == "sluice-nostore":
                proc.stop()
                proc, base = start_sluice_nostore(tmp)
                procs.append(proc)
            url = base + "/v1/chat/completions"
            load(url, "bench", 50, 1, 1)
            RESULTS.mkdir(exist_ok=True)
            raw_out = RESULTS / f"gateway.profile.{variant}.txt"
            rec = subprocess.Popen(["taskset", "-c", LOAD_CPU, spy, "record", "-p", str(proc.p.pid), "--nonblocking",
                                    "--rate", "250", "--duration", str(int(seconds)), "--format", "raw",
                                    "-o", str(raw_out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            wait_quiet()
            c0 = proc.cpu_s()
            r = load(url, "bench", rate, seconds, 1)
            cpu_ms = (proc.cpu_s() - c0) * 1000 / max(1, r["sent"] + int(rate))
            rec.wait(seconds + 30)
            if rec.returncode != 0:
                raise RuntimeError(f"py-spy failed: {rec.stderr.read().decode(errors='replace')[-1000:]}")
            lat = sorted(r["latencies_ms"])
            sections += [f"## {variant}: {r['ok']} requests at {rate:.0f} req/s, p50 {pct(lat, .5)} ms, "
                         f"p99 {pct(lat, .99)} ms, {cpu_ms:.2f} ms CPU per request (while sampled), "
                         f"load {loadavg()}", "", "```", hot_spots(raw_out), "```", ""]
        (RESULTS / "gateway.profile.md").write_text("\n".join(sections))
        print("\n".join(sections))
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def hot_spots(collapsed: Path, top: int = 20) -> str:
    """From py-spy's collapsed stacks: self samples by package, and the inclusive share of the
    gateway's own functions and of the heaviest frames overall."""
    incl: dict[str, int] = {}
    by_package: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames, count = stack.split(";"), int(n)
        total += count
        for f in set(frames):
            incl[f] = incl.get(f, 0) + count
        by_package[_package(frames[-1])] = by_package.get(_package(frames[-1]), 0) + count
    share = lambda v: f"{100 * v / max(total, 1):5.1f}%"  # noqa: E731
    out = [f"{total} samples", "", "self time by package (leaf frame):"]
    out += [f"  {share(v)}  {k}" for k, v in sorted(by_package.items(), key=lambda x: -x[1])[:top]]
    out += ["", "inclusive, Sluice's own frames:"]
    own = [(k, v) for k, v in incl.items() if "sluice/" in k and "cli/" not in k and "runner.py" not in k]
    out += [f"  {share(v)}  {k}" for k, v in sorted(own, key=lambda x: -x[1])[:top]]
    return "\n".join(out)


def _package(frame: str) -> str:
    """``name (path/to/module.py:12)`` -> the top package (``sluice/<sub>`` for Sluice)."""
    path = frame.rpartition("(")[2].rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    if not path or len(parts) == 1:
        return "(event loop, C code)" if "runners.py" in frame or not path else parts[0].removesuffix(".py")
    return "/".join(parts[:2]) if parts[0] == "sluice" else parts[0]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "loadgen":
        loadgen_main(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "serve-nostore":
        serve_without_store_writes(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds per rate")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--rates", type=int, nargs="+", default=list(RATES))
    ap.add_argument("--max-rate", type=int, default=LADDER[-1], help="top of the sustained-rate ladder")
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--quick", action="store_true", help="1 round of 3 s, no ladder past 1,000/s; nothing written")
    ap.add_argument("--results-name", default="gateway", help="write bench/results/<name>.md/.json")
    ap.add_argument("--profile", type=float, metavar="SECONDS", help="profile the gateway instead of benchmarking")
    ap.add_argument("--profile-rate", type=float, default=1000)
    ap.add_argument("--overload", action="store_true", help="capacity, then --multiples of it (load shedding)")
    ap.add_argument("--capacity", type=int, default=0, help="overload: skip the ladder and take this as capacity")
    ap.add_argument("--multiples", type=int, nargs="+", default=[2, 4])
    args = ap.parse_args()
    if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        sys.exit("needs 2 CPUs and taskset (util-linux) to pin the gateway apart from the load")
    if args.profile:
        profile(args.profile, args.profile_rate)
        return
    if args.overload:
        if args.quick:
            args.duration, args.warmup = 3.0, 1.0
        result = overload(args)
        md = overload_markdown(result)
        print(md)
        if not args.quick:
            RESULTS.mkdir(exist_ok=True)
            (RESULTS / "gateway.overload.json").write_text(json.dumps(result, indent=2) + "\n")
            (RESULTS / "gateway.overload.md").write_text(md)
        return
    if args.quick:
        args.rounds, args.duration, args.warmup, args.max_rate = 1, 3.0, 1.0, 1000
    result = run(args)
    md = markdown(result)
    print(md)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{args.results_name}.json").write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / f"{args.results_name}.md").write_text(md)


if __name__ == "__main__":
    main()
