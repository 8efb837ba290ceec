"""How long the quality layer takes: cleaning with every contract rule, quarantine and the inline checks.

    .venv/bin/python -m bench.quality_checks      # writes bench/results/quality_checks.{json,md}

The issue's bar: a month of flights validates in seconds, not minutes. Medians of 5 runs of
``clean_table`` (typing, transform, every pandera rule, quarantine, de-duplication) and of the
inline check results, on January and on the whole of 2013, from the real replayed files.
"""

import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
from dagster import AssetKey

from dataeng_assets.checks import cleaned_results_by_day
from dataeng_assets.landing.files import list_delivered, read_source_delivery
from dataeng_assets.landing.replay import read_package_table, replay
from dataeng_assets.sources import registry
from dataeng_assets.storage.delta_io_manager import to_pandas
from dataeng_assets.transforms.conform import clean_table

RESULTS = Path(__file__).parent / "results"
FS = pafs.LocalFileSystem()


def _raw(landing: Path, start: dt.date, end: dt.date):
    source = registry()["flights"]
    files = []
    day = start
    while day <= end:
        files += [
            (day, f)
            for f in list_delivered(FS, str(landing), source.landing_stem(day.isoformat()), "csv")
        ]
        day += dt.timedelta(days=1)
    now = dt.datetime.now(dt.UTC)
    tables = [
        read_source_delivery(FS, [f], "csv", source.raw_contract.column_names, now, d).table
        for d, f in files
    ]
    return to_pandas(pa.concat_tables(tables, promote_options="default"))


def _references():
    frames = {}
    for name in ("airlines", "airports", "planes"):
        source = registry()[name]
        table = read_package_table(name)
        raw = to_pandas(table).assign(
            _source_file=f"{name}.csv", _source_row=range(1, len(table) + 1)
        )
        frames[name] = clean_table(
            raw,
            source.cleaned_contract,
            natural_key=source.natural_key,
            normalise=source.normalise,
            na_values=source.na_values,
        ).frame
    return frames


def _median_seconds(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    source = registry()["flights"]
    contract = source.cleaned_contract
    references = _references()
    results = {
        "machine": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
        "date": dt.date.today().isoformat(),
        "loadavg": os.getloadavg(),
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as landing:
        replay(FS, landing, dt.date(2013, 1, 1), dt.date(2013, 12, 31), sources=[source])
        for label, start, end in [
            ("january", dt.date(2013, 1, 1), dt.date(2013, 1, 31)),
            ("full_year", dt.date(2013, 1, 1), dt.date(2013, 12, 31)),
        ]:
            raw = _raw(Path(landing), start, end)

            def clean(raw=raw):
                return clean_table(
                    raw,
                    contract,
                    natural_key=source.natural_key,
                    normalise=source.normalise,
                    na_values=source.na_values,
                    transform=source.transform_function(),
                    references=references,
                    time_column=source.time_column,
                )

            result = clean()
            results["runs"][label] = {
                "rows": len(raw),
                "clean_table_s": _median_seconds(clean),
                "checks_s": _median_seconds(
                    lambda result=result, raw=raw, start=start, end=end: cleaned_results_by_day(
                        AssetKey(["cleaned", "flights"]),
                        result,
                        raw,
                        contract,
                        list(source.natural_key),
                        references,
                        [
                            (start + dt.timedelta(days=i)).isoformat()
                            for i in range((end - start).days + 1)
                        ],
                    )
                ),
                "rows_quarantined": result.rows_quarantined,
            }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quality_checks.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "| data | rows | clean_table (all rules) s | inline checks s |",
        "|---|---:|---:|---:|",
    ]
    for label, run in results["runs"].items():
        lines.append(
            f"| {label} | {run['rows']:,} | {run['clean_table_s']:.2f} | {run['checks_s']:.2f} |"
        )
    (RESULTS / "quality_checks.md").write_text(
        "# Quality layer cost (flights)\n\n"
        + "\n".join(lines)
        + f"\n\nMedians of 5; {results['machine']}, load {results['loadavg']}, {results['date']}.\n"
        "Reproduce: `.venv/bin/python -m bench.quality_checks`.\n"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
