"""Where the time goes: pyinstrument over the Dagster CLI run and the bare script.

    python -m bench.profile [--rows 4000000] [--only cli_year bare_year cli_partition bare_partition]

Each target runs once under pyinstrument (sampling every 5 ms, main thread; time spent in Rust or C
inside delta-rs, pyarrow or SQLite is charged to the Python frame that called it), on the same data
and the same snapshot of the package as ``bench.run``. For each, ``bench/results/profiles/`` gets
``<name>.txt``: the wall time, the time by library (self time, charged to the nearest frame with a
file), the package's functions by inclusive time, and the heaviest call sites overall. The raw
sessions (``.pyisession``, for ``pyinstrument --load``) stay in data/bench/profiles/. ``profile.md``
is written by hand from these.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from bench import generate
from bench.common import PYTHON, REPO, RESULTS, VENV_BIN, WORK, loadavg, now_iso
from bench.run import DAY, YEAR, snapshot

OUT = RESULTS / "profiles"
SESSIONS = WORK / "profiles"
LANDMARKS = (
    # Dagster's own work around the steps: the run's events, planning, the instance.
    "_log_asset_planned_events",
    "store_event",
    "handle_new_event",
    "create_run_for_job",
    "_log_materialization_or_observation_events_for_asset",
    "_type_check_and_store_output",
    "_load_input_with_input_manager",
    "write_deltalake",
    "to_pyarrow_dataset",
    "execute_run",
)


def targets(rows: int) -> dict[str, tuple[str, Path, tuple[dt.date, dt.date]]]:
    year = generate.real_landing(WORK / "real" / "landing", *YEAR)
    scaled = generate.scaled_landing(rows)
    return {
        "cli_year": ("dagster_cli", year, YEAR),
        "bare_year": ("bare", year, YEAR),
        "cli_partition": ("dagster_cli", scaled, (DAY, DAY)),
        "bare_partition": ("bare", scaled, (DAY, DAY)),
    }


def command(way: str, landing: Path, lake: Path, window: tuple[dt.date, dt.date]) -> list[str]:
    start, end = (d.isoformat() for d in window)
    if way == "dagster_cli":
        partition = (
            ["--partition", start] if start == end else ["--partition-range", f"{start}...{end}"]
        )
        return ["-m", "dagster", "asset", "materialize", "-m", "dataeng_assets.definitions",
                "--select", "*", *partition]  # fmt: skip
    return ["-m", "bench.bare", "--landing", str(landing), "--lake", str(lake), "--start", start,
            "--end", end]  # fmt: skip


def library(frame) -> str:
    """The top-level package a frame's code belongs to; built-ins go to their caller's."""
    while frame is not None:
        path = frame.file_path or ""
        if path and not path.startswith("<"):
            if "/dataeng_assets/" in path:
                return "dataeng_assets"
            if "/bench/" in path and "site-packages" not in path:
                return "bench"
            if "site-packages/" in path:
                return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
            if "/lib/python3" in path:
                return "stdlib"
            return path
        frame = frame.parent
    return "?"


def summarise(session_path: Path, name: str, wall_s: float) -> dict:
    from pyinstrument.session import Session

    root = Session.load(str(session_path)).root_frame()
    by_library: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    package: collections.Counter[str] = collections.Counter()
    landmarks: collections.Counter[str] = collections.Counter()

    def key(frame) -> str:
        short = frame.file_path_short or ""
        return f"{frame.function} ({short}:{frame.line_no})" if short else frame.function

    def walk(frame, seen: frozenset[str], seen_landmarks: frozenset[str]) -> None:
        self_time = frame.time - sum(child.time for child in frame.children)
        by_library[library(frame)] += max(self_time, 0.0)
        k = key(frame)
        if k not in seen:
            inclusive[k] += frame.time
            if "dataeng_assets/" in (frame.file_path or "") or "bench/bare" in (
                frame.file_path or ""
            ):
                package[k] += frame.time
        if frame.function in LANDMARKS and frame.function not in seen_landmarks:
            landmarks[frame.function] += frame.time
            seen_landmarks = seen_landmarks | {frame.function}
        for child in frame.children:
            walk(child, seen | {k}, seen_landmarks)

    walk(root, frozenset(), frozenset())
    total = root.time
    lines = [
        f"# {name}: {wall_s:.1f} s wall (profiled), {total:.1f} s sampled",
        "",
        "## Self time by library (built-in calls charged to their caller's library)",
        *(f"{t:9.2f} s {t / total:6.1%}  {lib}" for lib, t in by_library.most_common(15)),
        "",
        "## Landmarks (inclusive, outermost call only)",
        *(f"{t:9.2f} s {t / total:6.1%}  {n}" for n, t in landmarks.most_common()),
        "",
        "## The package's functions (and bench/bare.py), inclusive",
        *(f"{t:9.2f} s {t / total:6.1%}  {k}" for k, t in package.most_common(40)),
        "",
        "## Heaviest call sites overall, inclusive (no recursion double count)",
        *(f"{t:9.2f} s {t / total:6.1%}  {k}" for k, t in inclusive.most_common(120) if t >= 0.01 * total),
    ]  # fmt: skip
    (OUT / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return {
        "wall_s": round(wall_s, 2),
        "sampled_s": round(total, 2),
        "by_library_s": {k: round(v, 2) for k, v in by_library.most_common(15)},
        "landmarks_s": {k: round(v, 2) for k, v in landmarks.most_common()},
        "package_s": {k: round(v, 2) for k, v in package.most_common(25)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--src", type=Path, default=REPO)
    args = parser.parse_args()
    src = snapshot(args.src.resolve())
    OUT.mkdir(parents=True, exist_ok=True)
    SESSIONS.mkdir(parents=True, exist_ok=True)
    summary_path = OUT / "profiles.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for name, (way, landing, window) in targets(args.rows).items():
        if args.only and name not in args.only:
            continue
        lake = WORK / "profiles" / name / "lake"
        home = WORK / "profiles" / name / "dagster_home"
        shutil.rmtree(lake, ignore_errors=True)
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / "dagster.yaml", home / "dagster.yaml")
        session = SESSIONS / f"{name}.pyisession"
        env = {
            **os.environ,
            "DATAENG_LANDING_ROOT": str(landing),
            "DATAENG_LAKE_ROOT": str(lake),
            "DAGSTER_HOME": str(home),
            "PYTHONPATH": os.pathsep.join([str(src), str(REPO)]),
        }
        before = loadavg()
        t0 = time.perf_counter()
        subprocess.run(
            [str(VENV_BIN / "pyinstrument"), "-i", "0.005", "-r", "pyisession", "-o", str(session),
             *command(way, landing, lake, window)],
            env=env, cwd=src, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wall = time.perf_counter() - t0
        summary[name] = {
            **summarise(session, name, wall),
            "landing": str(landing.relative_to(REPO)),
            "window": [d.isoformat() for d in window],
            "loadavg_before": before,
            "loadavg_after": loadavg(),
            "date": now_iso(),
            "python": PYTHON,
        }
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"{name}: {wall:.1f} s -> {OUT.relative_to(REPO)}/{name}.txt", flush=True)


if __name__ == "__main__":
    main()
