"""What every benchmark needs: the machine, the load, and a child process measured from outside.

Every measured thing runs in its own child process, so its wall time is the whole process (start-up
included) and its peak memory is its own. Peak memory is sampled every ``POLL_S`` seconds over the
child's process tree, two ways, and the larger is kept: the sum of the current RSS, and the sum of
each process's ``VmHWM`` (its RSS high-water mark since its ``exec``, so a peak between two samples
is not missed). ``ru_maxrss`` from ``wait4`` is not used: Linux folds the parent's memory at the time
of the fork into it, which overstates a small child by the size of this process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from bench import first_touch

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
WORK = REPO / "data" / "bench"  # generated data and lakes; /data is git-ignored
PYTHON = sys.executable
VENV_BIN = Path(sys.executable).parent
POLL_S = 0.05
GIB = 2**30
MIB = 2**20


def dagsters_own_event_log(config: str) -> str:
    """An instance config (dagster.yaml's text) with Dagster's own SQLite event log instead of the
    project's (``dataeng_assets/instance_event_log.py``): the "before" of that change."""
    block = config[config.index("event_log_storage:") :].split("\n\n", 1)[0]
    return config.replace(block, "")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=20, check=False
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def code_state(src: Path) -> dict[str, Any]:
    """Which code was measured: the commit, the package files that differ from it, a digest."""
    dirty = _git("status", "--porcelain", "--", "dataeng_assets", "dagster.yaml")
    digest = hashlib.sha256()
    for path in sorted((src / "dataeng_assets").rglob("*")):
        if path.is_file() and path.suffix in {".py", ".yaml"}:
            digest.update(str(path.relative_to(src)).encode() + path.read_bytes())
    return {
        "src": str(src),
        "commit": _git("rev-parse", "HEAD"),
        "package_files_changed_since_commit": [line[3:] for line in dirty.splitlines()],
        "package_digest": digest.hexdigest()[:16],
    }


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in (
        "dagster",
        "pandas",
        "pyarrow",
        "deltalake",
        "pandera",
        "duckdb",
        "polars",
        "numpy",
    ):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / GIB, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "shared": "2 cores shared with other sessions (see loadavg recorded with every run)",
        "fresh_memory": first_touch.measure(),
        "versions": versions,
    }


def median(values: Sequence[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100): an observed value, never an interpolation."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    rank = max(1, min(len(values), int(-(-q * len(values) // 100))))
    return values[rank - 1]


@dataclass
class Measured:
    """One child process, measured from outside."""

    name: str
    wall_s: float
    peak_rss_bytes: int
    returncode: int
    loadavg_before: list[float]
    loadavg_after: list[float]
    started_at: str
    killed_for_memory: bool = False
    # User + system CPU of the process and every descendant it waited for (wait4's rusage): over
    # the wall time, how many cores the way kept busy.
    cpu_s: float | None = None
    result: dict[str, Any] = field(default_factory=dict)  # what the child wrote to its --out file
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.killed_for_memory

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "wall_s": round(self.wall_s, 3),
            "peak_rss_mib": round(self.peak_rss_bytes / MIB, 1),
            "cpu_s": None if self.cpu_s is None else round(self.cpu_s, 3),
            "returncode": self.returncode,
            "killed_for_memory": self.killed_for_memory,
            "loadavg_before": self.loadavg_before,
            "loadavg_after": self.loadavg_after,
            "started_at": self.started_at,
            "inner": self.result,
            "log": self.log,
        }


def status_bytes(pid: int, field: str) -> int:
    """A memory field of ``/proc/<pid>/status`` in bytes (``VmRSS``, ``VmHWM``: the peak RSS since
    the process's exec), 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _hwm_bytes(pid: int) -> int:
    return status_bytes(pid, "VmHWM")


def _tree_memory(proc: psutil.Process, hwm: dict[int, int]) -> int:
    """Current RSS of the tree; ``hwm`` keeps each process's high-water mark seen so far."""
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
            hwm[p.pid] = max(hwm.get(p.pid, 0), _hwm_bytes(p.pid))
    return total


def run_measured(
    name: str,
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log_path: Path,
    out_path: Path | None = None,
    timeout_s: float = 3600,
    memory_cap_bytes: int | None = None,
) -> Measured:
    """Run ``cmd`` in a child process: wall time, peak memory of its tree, its result file.

    A child whose tree grows past ``memory_cap_bytes`` is killed (the machine is shared: better a
    missing number than another session's work lost to the OOM killer).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if out_path is not None and out_path.exists():
        out_path.unlink()
    full_env = {**os.environ, **(env or {})}
    before = loadavg()
    started = now_iso()
    peak = 0
    killed = False
    stop = threading.Event()
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        child = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = psutil.Process(child.pid)

        hwm: dict[int, int] = {}

        def poll() -> None:
            nonlocal peak, killed
            while not stop.is_set():
                rss = _tree_memory(proc, hwm)
                peak = max(peak, rss, sum(hwm.values()))
                if memory_cap_bytes and rss > memory_cap_bytes and not killed:
                    killed = True
                    os.killpg(child.pid, signal.SIGKILL)
                stop.wait(POLL_S)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        deadline = t0 + timeout_s
        status = 0
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(child.pid, signal.SIGKILL)
            time.sleep(0.01)
        wall = time.perf_counter() - t0
        child.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        poller.join()
    result: dict[str, Any] = {}
    if out_path is not None and out_path.exists():
        result = json.loads(out_path.read_text())
    tail = ""
    if child.returncode != 0 or killed:
        tail = log_path.read_text(errors="replace")[-3000:]
    return Measured(
        name=name,
        wall_s=wall,
        peak_rss_bytes=peak,
        returncode=child.returncode,
        loadavg_before=before,
        loadavg_after=loadavg(),
        started_at=started,
        killed_for_memory=killed,
        cpu_s=usage.ru_utime + usage.ru_stime,
        result=result,
        log=tail,
    )


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


class Timer:
    """Named phases inside a worker: ``with timer("raw"): ...``; ``timer.phases`` in seconds."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}

    def __call__(self, name: str) -> _Phase:
        return _Phase(self, name)


class _Phase:
    def __init__(self, timer: Timer, name: str) -> None:
        self.timer, self.name = timer, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        elapsed = time.perf_counter() - self.t0
        self.timer.phases[self.name] = round(self.timer.phases.get(self.name, 0.0) + elapsed, 4)
