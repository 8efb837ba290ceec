"""Fault injection: corrupt a day's delivery on purpose, reproducibly, and say exactly what was done.

Each fault kind is a pure function in ``FAULTS``. It takes the day's table (every value a string, as
the replay builds it) or, for faults that live in the bytes, the encoded file; a ``random.Random``;
and a ``FaultContext``. It returns the corrupted table or bytes and the ``FaultRecord``s that
describe every change: the manifest that tests hold the platform's reaction against.

Row numbers are 1-based data rows of the delivered file, header excluded: the raw layer's
``_source_row``. ``inject`` applies several kinds to one file in a fixed order and keeps them apart,
so that every corrupted row has exactly one reason and every record stays true: each row gets at
most one fault, a whole-column fault leaves the cells other faults set alone, ``missing_column``
drops only a column no other fault named, and rows after a ``truncated`` cut lose their records
(they were never delivered).

What counts as required, in range or a known code is written down here (``PROFILES``) rather than
read from the contracts: the injector is the independent oracle the contracts are tested against.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import posixpath
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Literal, cast

import pyarrow as pa
import pyarrow.fs as pafs

FAULTS_DIR = "_faults"  # below the landing root; "_" keeps it apart from every source's folder
ALL_FORMATS = frozenset({"csv", "parquet", "jsonl"})
MISSING_MARKERS = ("", "NA")  # how upstream writes a missing value (the registry's na_values)
# Codes absent from the 2013 airlines and airports snapshots (a test checks it), and upper case,
# so that the cleaned layer's normalising (strip, upper) cannot turn them into known codes.
UNKNOWN_CARRIERS = ("ZZ", "XQ", "Q9")
UNKNOWN_AIRPORTS = ("ZZZ", "XQX", "QQQ")
NOT_NUMBERS = ("abc", "12a", "1.2.3", "ten", "#VALUE!")
NON_ASCII = "ÉÜÑØ"  # one byte each in latin-1, none of them valid UTF-8 where they stand
# Classic invalid UTF-8: a lone continuation byte, a bad continuation, an overlong "/", a surrogate,
# 0xFF. None contains a comma, quote or newline, so the line keeps its fields.
INVALID_UTF8 = (b"\x80", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xff")
EXTRA_COLUMNS = ("remarks", "feed_version", "gate")


class FaultNotApplicable(ValueError):
    """A fault that cannot be applied to this delivery (format, source, or another fault)."""


@dataclass(frozen=True)
class FaultRecord:
    """One change made on purpose. A line of the manifest ``_faults/<source>/<day>.jsonl``.

    ``row`` is the 1-based data row in the delivered file (``_source_row``), or None when the
    fault concerns the whole file (or cuts the header). ``original`` and ``new`` are values,
    except for ``malformed_line`` and ``truncated`` where they are whole lines (without the
    newline). Bytes that are not UTF-8 are shown as ``\\xNN`` (Python's ``backslashreplace``).
    """

    kind: str
    file: str  # below the landing root, as raw's _source_file: flights/2013-01-05.csv
    row: int | None = None
    column: str | None = None
    original: str | None = None
    new: str | None = None
    copy_of: int | None = None  # duplicate_rows: the row the added row copies
    detail: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass(frozen=True)
class SourceProfile:
    """What the injector may break in one source's rows, and how."""

    required: tuple[str, ...]
    int_columns: tuple[str, ...]
    numeric_columns: tuple[str, ...]
    # column -> the out-of-range value written instead of the original
    out_of_range: Mapping[str, Callable[[str], str]]
    carrier_columns: tuple[str, ...] = ()
    airport_columns: tuple[str, ...] = ()
    text_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class FaultContext:
    """What a fault function needs besides the data and the random generator."""

    file: str
    fmt: str
    profile: SourceProfile
    count: int  # rows to corrupt, for faults that corrupt rows
    avoid_rows: frozenset[int] = frozenset()  # rows an earlier fault changed (or copied)
    avoid_columns: frozenset[str] = frozenset()  # columns an earlier fault changed or added
    file_columns: frozenset[str] = frozenset()  # columns a whole-file fault added or rewrote
    changed_cells: frozenset[tuple[int, str]] = frozenset()  # (row, column) an earlier fault set


Result = tuple[pa.Table, list[FaultRecord]]
BytesResult = tuple[bytes, list[FaultRecord]]
TableFault = Callable[[pa.Table, random.Random, FaultContext], Result]
BytesFault = Callable[[bytes, random.Random, FaultContext], BytesResult]


def _negative(value: str) -> str:
    """A negative number from a value: its own negation when it is a positive number."""
    try:
        positive = float(value) > 0
    except ValueError:
        positive = False
    return f"-{value}" if positive else "-1"


def _constant(value: str) -> Callable[[str], str]:
    return lambda _original: value


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


PROFILES: dict[str, SourceProfile] = {
    "flights": SourceProfile(
        required=_names(
            "year month day sched_dep_time sched_arr_time carrier flight origin dest distance"
            " hour minute time_hour"
        ),
        int_columns=_names(
            "year month day dep_time sched_dep_time arr_time sched_arr_time flight hour minute"
        ),
        numeric_columns=_names(
            "year month day dep_time sched_dep_time dep_delay arr_time sched_arr_time arr_delay"
            " flight air_time distance hour minute"
        ),
        out_of_range={
            "distance": _negative,
            "air_time": _negative,
            "dep_delay": _constant("100000"),
            "arr_delay": _constant("-100000"),
            "month": _constant("13"),
            "hour": _constant("24"),
            "minute": _constant("60"),
        },
        carrier_columns=("carrier",),
        airport_columns=("origin", "dest"),
        text_columns=("carrier", "tailnum", "origin", "dest"),
    ),
    "weather": SourceProfile(
        required=_names("origin year month day hour time_hour"),
        int_columns=_names("year month day hour"),
        numeric_columns=_names(
            "year month day hour temp dewp humid wind_dir wind_speed wind_gust precip pressure visib"
        ),
        out_of_range={
            "month": _constant("13"),
            "hour": _constant("24"),
            "humid": _constant("150"),  # a percentage
            "wind_dir": _constant("720"),  # degrees
            "wind_speed": _negative,
            "precip": _negative,
        },
        airport_columns=("origin",),
        text_columns=("origin",),
    ),
}


# --- helpers ------------------------------------------------------------------------------------


def _pick_rows(rng: random.Random, rows: int, ctx: FaultContext) -> list[int]:
    """``ctx.count`` distinct 1-based rows that no earlier fault touched (fewer if that many aren't left)."""
    free = [row for row in range(1, rows + 1) if row not in ctx.avoid_rows]
    return sorted(rng.sample(free, min(ctx.count, len(free))))


def _present(columns: Iterable[str], available: Iterable[str]) -> list[str]:
    names = set(available)
    return [c for c in columns if c in names]


def _edit(
    table: pa.Table, kind: str, ctx: FaultContext, edits: list[tuple[int, str, str, str]]
) -> Result:
    """Set ``table[column][row - 1] = new`` for each (row, column, new, detail); one record each."""
    changed: dict[str, list[str]] = {}
    records = []
    for row, column, new, detail in edits:
        values = changed.setdefault(column, table[column].to_pylist())
        records.append(
            FaultRecord(kind, ctx.file, row, column, values[row - 1], new, detail=detail)
        )
        values[row - 1] = new
    for column, values in changed.items():
        index = table.column_names.index(column)
        table = table.set_column(index, column, pa.array(values, pa.large_string()))
    return table, records


def _show(data: bytes) -> str:
    return data.decode("utf-8", errors="backslashreplace")


def _csv_lines(data: bytes, ctx: FaultContext) -> tuple[list[str], list[bytes]]:
    """The header's names and the lines (``lines[row]`` is data row ``row``; ``lines[0]`` the header).

    Splitting on newlines finds the rows only when no value is quoted, which holds for what the
    replay writes (no value contains a comma, quote or newline): refused otherwise, never guessed.
    """
    if ctx.fmt != "csv":
        raise FaultNotApplicable(f"{ctx.file}: line faults need csv, not {ctx.fmt}")
    if b'"' in data or not data.endswith(b"\n"):
        raise FaultNotApplicable(f"{ctx.file}: not plain one-line-per-row csv")
    lines = data[:-1].split(b"\n")
    return lines[0].decode("utf-8").split(","), lines


def _join(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


# --- faults on the table (row by row) -----------------------------------------------------------


def duplicate_rows(table: pa.Table, rng: random.Random, ctx: FaultContext) -> Result:
    """Exact copies of some rows, each placed somewhere after its original (delivered twice)."""
    originals = _pick_rows(rng, table.num_rows, ctx)
    # A copy goes after original index `after` (0-based), i.e. anywhere later in the file.
    copies_after: dict[int, list[int]] = {}
    for row in originals:
        after = rng.randrange(row - 1, table.num_rows)
        copies_after.setdefault(after, []).append(row - 1)
    order: list[int] = []
    placed: list[tuple[int, int]] = []  # (position of the copy, original index)
    position_of: dict[int, int] = {}
    for index in range(table.num_rows):
        position_of[index] = len(order)
        order.append(index)
        for original in copies_after.get(index, []):
            placed.append((len(order), original))
            order.append(original)
    records = [
        FaultRecord(
            "duplicate_rows",
            ctx.file,
            copy + 1,
            copy_of=position_of[original] + 1,
            detail=f"row {copy + 1} is an exact copy of row {position_of[original] + 1}",
        )
        for copy, original in placed
    ]
    return table.take(pa.array(order, pa.int64())), records


def null_required(table: pa.Table, rng: random.Random, ctx: FaultContext) -> Result:
    """A required value missing, written as upstream writes missing values ("" or NA)."""
    columns = _present(ctx.profile.required, table.column_names)
    edits = []
    for row in _pick_rows(rng, table.num_rows, ctx):
        column, marker = rng.choice(columns), rng.choice(MISSING_MARKERS)
        edits.append((row, column, marker, f"required {column} missing"))
    return _edit(table, "null_required", ctx, edits)


def out_of_range(table: pa.Table, rng: random.Random, ctx: FaultContext) -> Result:
    """A value no real row can have: negative distance, a 100000-minute delay, month 13, ..."""
    columns = _present(sorted(ctx.profile.out_of_range), table.column_names)
    edits = []
    for row in _pick_rows(rng, table.num_rows, ctx):
        column = rng.choice(columns)
        new = ctx.profile.out_of_range[column](table[column][row - 1].as_py())
        edits.append((row, column, new, f"{column} out of range"))
    return _edit(table, "out_of_range", ctx, edits)


def _replace_codes(
    table: pa.Table,
    rng: random.Random,
    ctx: FaultContext,
    kind: str,
    columns: tuple[str, ...],
    codes: tuple[str, ...],
    reference: str,
) -> Result:
    present = _present(columns, table.column_names)
    edits = []
    for row in _pick_rows(rng, table.num_rows, ctx):
        column, code = rng.choice(present), rng.choice(codes)
        edits.append((row, column, code, f"{code} is not in {reference}"))
    return _edit(table, kind, ctx, edits)


def unknown_carrier(table: pa.Table, rng: random.Random, ctx: FaultContext) -> Result:
    """A carrier code that is not in the airlines snapshot."""
    columns = ctx.profile.carrier_columns
    return _replace_codes(table, rng, ctx, "unknown_carrier", columns, UNKNOWN_CARRIERS, "airlines")


def unknown_airport(table: pa.Table, rng: random.Random, ctx: FaultContext) -> Result:
    """An airport code (origin or destination) that is not in the airports snapshot."""
    columns = ctx.profile.airport_columns
    return _replace_codes(table, rng, ctx, "unknown_airport", columns, UNKNOWN_AIRPORTS, "airports")


def impossible_date(table: pa.Table, rng: random.Random, ctx: FaultContext) -> Result:
    """A day its month does not have (31 April, 29-31 February 2013, 32 anything); month kept."""
    edits = []
    for row in _pick_rows(rng, table.num_rows, ctx):
        year, month = int(table["year"][row - 1].as_py()), int(table["month"][row - 1].as_py())
        last = calendar.monthrange(year, month)[1]
        day = str(rng.randint(last + 1, 32))
        edits.append((row, "day", day, f"{year}-{month:02d} has no day {day}"))
    return _edit(table, "impossible_date", ctx, edits)


def changed_type(table: pa.Table, rng: random.Random, ctx: FaultContext) -> Result:
    """Text where a number is expected ("abc" in an int column)."""
    columns = _present(ctx.profile.numeric_columns, table.column_names)
    edits = []
    for row in _pick_rows(rng, table.num_rows, ctx):
        column, text = rng.choice(columns), rng.choice(NOT_NUMBERS)
        edits.append((row, column, text, f"{column} is not a number"))
    return _edit(table, "changed_type", ctx, edits)


# --- faults on the table (whole columns) --------------------------------------------------------


def _pick_column(
    rng: random.Random, columns: Iterable[str], table: pa.Table, ctx: FaultContext
) -> str:
    """A column among ``columns`` that no earlier fault named, so its records stay true."""
    free = [c for c in _present(columns, table.column_names) if c not in ctx.avoid_columns]
    if not free:
        raise FaultNotApplicable(f"{ctx.file}: no column left that no other fault changed")
    return rng.choice(free)


def ints_as_floats(table: pa.Table, rng: random.Random, ctx: FaultContext) -> Result:
    """An integer column delivered as floats: every value ``1545`` becomes ``1545.0``.

    Cells another fault set keep that fault's value, so its record stays true; missing values (NA)
    stay missing.
    """
    free = [c for c in ctx.profile.int_columns if c in table.column_names]
    column = rng.choice([c for c in free if c not in ctx.file_columns])
    kept = {row for row, name in ctx.changed_cells if name == column}
    values = [
        f"{value}.0" if value.lstrip("-").isdigit() and row not in kept else value
        for row, value in enumerate(table[column].to_pylist(), start=1)
    ]
    table = table.set_column(
        table.column_names.index(column), column, pa.array(values, pa.large_string())
    )
    record = FaultRecord(
        "ints_as_floats",
        ctx.file,
        column=column,
        detail=f"every integer in {column} written as a float (1545 -> 1545.0)"
        + (f", except rows {sorted(kept)} set by other faults" if kept else ""),
    )
    return table, [record]


def extra_column(table: pa.Table, rng: random.Random, ctx: FaultContext) -> Result:
    """A column the contract does not declare, inserted at a random position, one value throughout.

    One value throughout keeps copies made by ``duplicate_rows`` exact.
    """
    name = rng.choice([c for c in EXTRA_COLUMNS if c not in table.column_names])
    position, value = rng.randint(0, table.num_columns), rng.choice(("1", "v2", "A"))
    table = table.add_column(position, name, pa.array([value] * table.num_rows, pa.large_string()))
    record = FaultRecord(
        "extra_column",
        ctx.file,
        column=name,
        new=value,
        detail=f"undeclared column {name} at position {position + 1}, every value {value!r}",
    )
    return table, [record]


def missing_column(table: pa.Table, rng: random.Random, ctx: FaultContext) -> Result:
    """A declared column left out of the file."""
    column = _pick_column(rng, table.column_names, table, ctx)
    table = table.drop_columns([column])
    record = FaultRecord("missing_column", ctx.file, column=column, detail="left out of the file")
    return table, [record]


# --- faults on the bytes ------------------------------------------------------------------------


def malformed_line(data: bytes, rng: random.Random, ctx: FaultContext) -> BytesResult:
    """Lines with the wrong number of fields: a delimiter lost, or an unquoted comma in a value."""
    header, lines = _csv_lines(data, ctx)
    records = []
    for row in _pick_rows(rng, len(lines) - 1, ctx):
        fields = lines[row].split(b",")
        i = rng.randrange(len(fields) - 1)
        if rng.random() < 0.5:
            fields[i : i + 2] = [fields[i] + fields[i + 1]]
            detail = f"delimiter between {header[i]} and {header[i + 1]} lost: one field too few"
        else:
            cut = rng.randint(0, len(fields[i]))
            fields[i : i + 1] = [fields[i][:cut], fields[i][cut:]]
            detail = f"unquoted comma in {header[i]}: one field too many"
        original, lines[row] = lines[row], b",".join(fields)
        records.append(
            FaultRecord(
                "malformed_line",
                ctx.file,
                row,
                header[i],
                original=_show(original),
                new=_show(lines[row]),
                detail=detail,
            )
        )
    return _join(lines), records


def _garble_values(
    data: bytes,
    rng: random.Random,
    ctx: FaultContext,
    kind: str,
    columns: Iterable[str],
    garble: Callable[[str, random.Random], tuple[bytes, str]],
) -> BytesResult:
    """Rewrite one value in each picked row as ``garble`` says (new bytes and a detail)."""
    header, lines = _csv_lines(data, ctx)
    present = _present(columns, header)
    records = []
    for row in _pick_rows(rng, len(lines) - 1, ctx):
        column = rng.choice(present)
        fields = lines[row].split(b",")
        index = header.index(column)
        original = fields[index]
        fields[index], detail = garble(original.decode("utf-8"), rng)
        lines[row] = b",".join(fields)
        records.append(
            FaultRecord(
                kind, ctx.file, row, column, _show(original), _show(fields[index]), detail=detail
            )
        )
    return _join(lines), records


def _latin1(value: str, rng: random.Random) -> tuple[bytes, str]:
    text = value + rng.choice(NON_ASCII)
    return text.encode("latin-1"), f"{text!r} written in latin-1, not UTF-8"


def _invalid_utf8(value: str, rng: random.Random) -> tuple[bytes, str]:
    garbage = rng.choice(INVALID_UTF8)
    return value.encode("utf-8") + garbage, f"bytes {garbage.hex(' ')} are not UTF-8"


def wrong_encoding_latin1(data: bytes, rng: random.Random, ctx: FaultContext) -> BytesResult:
    """Values with an accented letter written in latin-1, in a file that is otherwise UTF-8."""
    columns = ctx.profile.text_columns
    return _garble_values(data, rng, ctx, "wrong_encoding_latin1", columns, _latin1)


def invalid_utf8(data: bytes, rng: random.Random, ctx: FaultContext) -> BytesResult:
    """Values followed by bytes that are not UTF-8 (nor text in any encoding one would guess).

    Not in a column a whole-file fault added or rewrote: its record describes the whole column.
    """
    header = data.split(b"\n", 1)[0].decode("utf-8").split(",")
    columns = [c for c in header if c not in ctx.file_columns]
    return _garble_values(data, rng, ctx, "invalid_utf8", columns, _invalid_utf8)


def truncated(data: bytes, rng: random.Random, ctx: FaultContext) -> BytesResult:
    """The file cut inside a line: that line is partial, the rows after it never arrive.

    The cut falls in a row no other fault changed; ``inject`` drops the records of rows after it,
    which were never delivered. With no such row (a day without rows, say) the header is cut.
    """
    header, lines = _csv_lines(data, ctx)
    candidates = [
        row for row in range(1, len(lines)) if row not in ctx.avoid_rows and len(lines[row]) >= 2
    ]
    row = rng.choice(candidates) if candidates else 0
    keep = rng.randrange(1, len(lines[row]))  # at least one byte kept, at least one lost
    offset = sum(len(line) + 1 for line in lines[:row]) + keep
    partial = lines[row][:keep]
    rows = len(lines) - 1
    lost = f"rows {row + 1}..{rows} not delivered" if row < rows else "no row after it"
    record = FaultRecord(
        "truncated",
        ctx.file,
        row or None,  # None: the header itself is partial
        column=header[partial.count(b",")],  # the field the cut falls in
        original=_show(lines[row]),
        new=_show(partial),
        detail=f"file cut at byte {offset} of {len(data)}: "
        + (f"row {row} partial, {lost}" if row else f"header partial, {lost}"),
    )
    return data[:offset], [record]


def wrong_encoding_utf16(data: bytes, rng: random.Random, ctx: FaultContext) -> BytesResult:
    """The whole file in UTF-16 (little-endian, with a byte-order mark) instead of UTF-8."""
    if ctx.fmt == "parquet":
        raise FaultNotApplicable(f"{ctx.file}: parquet has no text encoding to get wrong")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FaultNotApplicable(f"{ctx.file}: already not UTF-8, cannot re-encode") from error
    record = FaultRecord(
        "wrong_encoding_utf16", ctx.file, detail="whole file in UTF-16 LE with a byte-order mark"
    )
    return text.encode("utf-16"), [record]


def empty_file(data: bytes, rng: random.Random, ctx: FaultContext) -> BytesResult:
    """Zero bytes: not even the header."""
    record = FaultRecord("empty_file", ctx.file, detail=f"0 bytes instead of {len(data)}")
    return b"", [record]


# --- the registry -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultKind:
    """A fault function, what it works on, and where it applies."""

    apply: TableFault | BytesFault
    stage: Literal["table", "bytes"]
    formats: frozenset[str] = ALL_FORMATS
    needs: str | None = None  # a SourceProfile field that must not be empty
    alone: bool = False  # cannot be combined with another fault in the same file

    @property
    def description(self) -> str:
        return (self.apply.__doc__ or "").strip().split("\n")[0]

    def applies_to(self, source: str, fmt: str) -> bool:
        profile = PROFILES.get(source)
        if profile is None or fmt not in self.formats:
            return False
        return self.needs is None or bool(getattr(profile, self.needs))


CSV = frozenset({"csv"})
# The order is the order of application: copies first (they renumber the rows, and the later
# faults then avoid both copy and original), then values, columns, encoding, and bytes last.
FAULTS: dict[str, FaultKind] = {
    "duplicate_rows": FaultKind(duplicate_rows, "table"),
    "null_required": FaultKind(null_required, "table"),
    "out_of_range": FaultKind(out_of_range, "table"),
    "unknown_carrier": FaultKind(unknown_carrier, "table", needs="carrier_columns"),
    "unknown_airport": FaultKind(unknown_airport, "table", needs="airport_columns"),
    "impossible_date": FaultKind(impossible_date, "table"),
    "changed_type": FaultKind(changed_type, "table"),
    "ints_as_floats": FaultKind(ints_as_floats, "table"),
    "extra_column": FaultKind(extra_column, "table"),
    "missing_column": FaultKind(missing_column, "table"),
    "malformed_line": FaultKind(malformed_line, "bytes", CSV),
    "wrong_encoding_latin1": FaultKind(wrong_encoding_latin1, "bytes", CSV, needs="text_columns"),
    "invalid_utf8": FaultKind(invalid_utf8, "bytes", CSV),
    "truncated": FaultKind(truncated, "bytes", CSV),
    "wrong_encoding_utf16": FaultKind(wrong_encoding_utf16, "bytes", CSV | {"jsonl"}),
    "empty_file": FaultKind(empty_file, "bytes", alone=True),
}
_NOT_UTF8 = {"wrong_encoding_latin1", "invalid_utf8"}


def check_faults(kinds: Iterable[str], source: str, fmt: str) -> list[str]:
    """Why these kinds cannot be injected together into ``source`` delivered as ``fmt`` (empty: ok)."""
    kinds = set(kinds)
    problems = [f"unknown fault {k!r}" for k in sorted(kinds - FAULTS.keys())]
    for kind in sorted(kinds & FAULTS.keys()):
        if not FAULTS[kind].applies_to(source, fmt):
            problems.append(f"{kind} does not apply to {source} delivered as {fmt}")
        if FAULTS[kind].alone and len(kinds) > 1:
            problems.append(f"{kind} cannot be combined with other faults")
    if "wrong_encoding_utf16" in kinds and kinds & _NOT_UTF8:
        problems.append(
            "wrong_encoding_utf16 re-encodes UTF-8 text: not with latin-1/invalid bytes"
        )
    return problems


def row_count(rate: float, rows: int) -> int:
    """Rows a row fault corrupts: the fraction ``rate`` of the file, at least one."""
    return max(1, round(rate * rows))


def inject(
    table: pa.Table,
    kinds: Iterable[str],
    *,
    encode: Callable[[pa.Table], bytes],
    source: str,
    day: str,
    file: str,
    fmt: str,
    seed: int,
    rate: float,
) -> BytesResult:
    """The day's file with ``kinds`` injected, encoded, and the manifest of every change.

    Each kind draws from its own generator, seeded by (seed, source, day, kind): the same
    arguments give the same bytes and manifest, and a day's faults do not depend on which other
    days are replayed.
    """
    kinds = set(kinds)
    problems = check_faults(kinds, source, fmt)
    if problems:
        raise FaultNotApplicable(f"{file}: " + "; ".join(problems))
    ctx = FaultContext(
        file=file, fmt=fmt, profile=PROFILES[source], count=row_count(rate, table.num_rows)
    )
    records: list[FaultRecord] = []
    data: bytes | None = None
    for name, kind in FAULTS.items():
        if name not in kinds:
            continue
        rng = random.Random(f"{seed}/{source}/{day}/{name}")
        ctx = replace(
            ctx,
            avoid_rows=frozenset(
                r for rec in records for r in (rec.row, rec.copy_of) if r is not None
            ),
            avoid_columns=frozenset(rec.column for rec in records if rec.column),
            file_columns=frozenset(rec.column for rec in records if rec.column and rec.row is None),
            changed_cells=frozenset(
                (rec.row, rec.column) for rec in records if rec.row is not None and rec.column
            ),
        )
        if kind.stage == "table":
            table, new = cast(TableFault, kind.apply)(table, rng, ctx)
        else:
            if data is None:
                data = encode(table)
            data, new = cast(BytesFault, kind.apply)(data, rng, ctx)
        if name == "truncated":  # rows after the cut were never delivered: nothing to record
            cut = new[0].row
            records = [r for r in records if r.row is None or (cut is not None and r.row < cut)]
        records.extend(new)
    return (encode(table) if data is None else data), records


# --- the manifest -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultPlan:
    """What the replay corrupts: which kinds, in which sources and days, how much, with which seed."""

    kinds: tuple[str, ...]
    sources: tuple[str, ...] = ("flights",)
    rate: float = 0.01
    days: frozenset[dt.date] | None = None  # None: every replayed day
    seed: int = 0

    def covers(self, source: str, day: dt.date) -> bool:
        return source in self.sources and (self.days is None or day in self.days)


def manifest_path(root: str, source: str, day: str) -> str:
    """``<root>/_faults/<source>/<day>.jsonl``: outside every source folder the raw layer lists."""
    return posixpath.join(root, FAULTS_DIR, source, f"{day}.jsonl")


def encode_manifest(records: Iterable[FaultRecord]) -> bytes:
    return "".join(record.to_json() + "\n" for record in records).encode("utf-8")


def read_manifest(fs: pafs.FileSystem, root: str, source: str, day: str) -> list[FaultRecord]:
    """The records written for ``source`` on ``day`` (a missing manifest: nothing was injected)."""
    path = manifest_path(root, source, day)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return []
    with fs.open_input_stream(path) as handle:
        text = handle.read().decode("utf-8")
    return [FaultRecord(**json.loads(line)) for line in text.splitlines() if line]
