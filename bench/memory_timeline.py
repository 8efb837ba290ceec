"""Where a large day's run peaks: its resident memory over time, sampled from another process.

    python -m bench.memory_timeline [--rows 4000000] [--reps 2] [--src TREE] [--out PATH]

Runs ``dagster asset materialize`` of the scaled day, as ``bench.run``'s partition scenario does
(fresh lake, fresh ``$DAGSTER_HOME`` from ``dagster.yaml``, a snapshot of the package), and reads
the run's ``VmRSS`` every 20 ms from this process, so the sampling allocates nothing in the run (a
sampler thread inside the run moved its peak by more than 0.6 GiB in session 8). The run's own
log marks the phases: each step's start, inputs loaded, outputs yielded and handled, end. For each
phase: the largest resident size seen, and the run's high-water mark (``VmHWM``). ``--src`` measures
another tree (a ``git worktree`` of an older commit), for before and after.

Writes ``results/memory_timeline.{json,md}`` (``--out`` for the JSON; the Markdown sits next to it).
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

from bench import generate
from bench.common import (
    REPO,
    RESULTS,
    WORK,
    loadavg,
    machine,
    now_iso,
    status_bytes,
    write_json,
)
from bench.run import DAY, cli_materialize, run_env, snapshot

INTERVAL_S = 0.02
# "... - <step> - <EVENT_TYPE> - <message>" as the CLI logs a run's events.
EVENT = re.compile(
    r" - (?P<step>[\w]+) - (?P<kind>STEP_START|LOADED_INPUT|STEP_OUTPUT|HANDLED_OUTPUT|"
    r"STEP_SUCCESS|STEP_FAILURE) - (?P<message>.*)$"
)


def trace(src: Path, landing: Path, work: Path) -> dict:
    """One CLI run of the day: RSS samples and the step events, both in seconds from its start."""
    lake, home = work / "lake", work / "dagster_home"
    shutil.rmtree(work, ignore_errors=True)
    lake.mkdir(parents=True)
    home.mkdir()
    shutil.copy(src / "dagster.yaml", home / "dagster.yaml")  # as `make` does
    env = {
        **os.environ,
        **run_env(src, landing, lake, home),
        "PYTHONUNBUFFERED": "1",  # each log line as it happens: the phases' marks
    }
    cmd = cli_materialize(["--partition", DAY.isoformat()])
    load = loadavg()
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=src, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)  # fmt: skip
    events: list[tuple[float, str, str, str]] = []

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            match = EVENT.search(line.rstrip())
            if match:
                events.append((time.perf_counter() - start, match["step"], match["kind"],
                               match["message"][:80]))  # fmt: skip

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    samples: list[tuple[float, float]] = []
    hwm = 0
    while child.poll() is None:
        rss = status_bytes(child.pid, "VmRSS")
        hwm = max(hwm, status_bytes(child.pid, "VmHWM"))
        if rss:
            samples.append((round(time.perf_counter() - start, 3), round(rss / 2**30, 4)))
        time.sleep(INTERVAL_S)
    reader.join(timeout=5)
    return {
        "wall_s": round(time.perf_counter() - start, 2),
        "returncode": child.returncode,
        "loadavg_before": load,
        "hwm_gib": round(hwm / 2**30, 3),
        "samples": samples,
        "events": events,
        "phases": phases(samples, events),
    }


def phases(samples: list[tuple[float, float]], events: list[tuple[float, str, str, str]]) -> list:
    """The largest RSS between each step event and the next (the phase named by the first)."""
    marks = [(0.0, "(start-up)", "", ""), *events, (float("inf"), "", "", "")]
    out = []
    for (begin, step, kind, message), (end, *_) in itertools.pairwise(marks):
        inside = [rss for at, rss in samples if begin <= at < end]
        if inside:
            out.append({"from_s": round(begin, 2), "step": step, "after": kind,
                        "message": message, "max_rss_gib": round(max(inside), 3)})  # fmt: skip
    return out


def write_markdown(result: dict, path: Path) -> None:
    lines = [
        "# Where a large day's run peaks",
        "",
        f"`python -m bench.memory_timeline --rows {result['rows']}` ({result['finished_at']}): "
        f"`dagster asset materialize` of one day of {result['rows']:,} flights, its resident "
        f"memory read every {int(INTERVAL_S * 1000)} ms from another process, the phases marked "
        "by the run's own step events. Package: "
        f"`{result['src']}`.",
        "",
        "| run | wall (s) | high-water mark (GiB) | peak phase | load 1-min |",
        "|---:|---:|---:|---|---:|",
    ]
    for index, run in enumerate(result["runs"], start=1):
        top = max(run["phases"], key=lambda p: p["max_rss_gib"])
        lines.append(
            f"| {index} | {run['wall_s']} | {run['hwm_gib']} | {top['step']}, after "
            f"{top['after'] or 'start'} ({top['max_rss_gib']} GiB) | {run['loadavg_before'][0]} |"
        )
    last = result["runs"][-1]
    lines += ["", "The last run's phases (0.5 GiB and above):", "",
              "| from (s) | step | after | max RSS (GiB) |", "|---:|---|---|---:|"]  # fmt: skip
    for phase in last["phases"]:
        if phase["max_rss_gib"] >= 0.5:
            lines.append(
                f"| {phase['from_s']} | {phase['step']} | {phase['after']} {phase['message'][:50]} "
                f"| {phase['max_rss_gib']} |"
            )
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_timeline")
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--src", type=Path, default=REPO, help="the tree whose package is measured")
    parser.add_argument("--out", type=Path, default=RESULTS / "memory_timeline.json")
    args = parser.parse_args(argv)
    landing = generate.scaled_landing(args.rows)
    src = snapshot(args.src)
    runs = []
    for rep in range(args.reps):
        run = trace(src, landing, WORK / "memory_timeline")
        print(f"  run {rep + 1}: {run['wall_s']} s, high-water mark {run['hwm_gib']} GiB, "
              f"rc {run['returncode']}", flush=True)  # fmt: skip
        runs.append(run)
    result = {"rows": args.rows, "src": str(args.src), "machine": machine(),
              "finished_at": now_iso(), "runs": runs}  # fmt: skip
    write_json(args.out, result)
    write_markdown(result, args.out.with_suffix(".md"))
    print(f"peak {max(r['hwm_gib'] for r in runs)} GiB -> {args.out}")


if __name__ == "__main__":
    main()
