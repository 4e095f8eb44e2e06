"""Numeric time series from a CSV file: columns by name, one-hot categories, missing values, calendar features.

    CSV (.csv, .csv.gz, or a .zip holding one .csv, like the Keras Jena archive)
      ──read_table──> header, rows of strings (a ragged row is an error naming its line)
      ──load_series──> Series: values (N, F) float64, one column per feature, the target among them,
                       times (N,) datetime64[s] when a time column is given

Choices, all by column name (the errors list the available names):

- ``target``: the column to forecast. It is always an input too (its own past), as in lecture 003,
  whose generator reads the temperature from the same array as the other features.
- ``features``: the input columns (default: every column but the time columns).
- ``time``: one column holding a date/time (ISO 8601, or the Jena archive's ``01.01.2009 00:10:00``, or
  any ``time_format`` for ``datetime.strptime``), or several columns named year, month, day, hour, minute,
  second (Beijing PM2.5's ``year,month,day,hour``).
- ``categorical``: text columns one-hot encoded, one column ``name=value`` per category (sorted), e.g.
  ``cbwd=NE, cbwd=NW, cbwd=SE, cbwd=cv``.
- ``fill``: missing values (an empty cell, ``NA``, ``NaN``, ``null``, ``?``) are an error naming the
  columns and lines unless a policy is given: ``ffill`` (the last observed value; cells before the first
  observation take the first one), ``interpolate`` (linear in the row index; the ends hold the nearest
  observation) or ``drop`` (rows with any missing value are removed; the rows around a gap then become
  neighbours, so windows span the gap).
- ``calendar``: ``hour`` (of the day), ``dow`` (day of the week), ``doy`` (day of the year), each as a
  sin/cos pair on the unit circle so that 23 h is next to 0 h: ``hour_sin = sin(2 pi h / 24)``, ...

:func:`chronological_split` cuts the rows into train / valid / test ranges, by fractions or row indices.
"""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import logging
import lzma
import math
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})  # compared lower-cased, stripped
FILLS = ("ffill", "interpolate", "drop")
CALENDAR = ("hour", "dow", "doy")
TIME_PARTS = ("year", "month", "day", "hour", "minute", "second")
YEARS = (1, 9999)  # the years a time stamp may have (Python's datetime's range)
_TIME_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y")  # tried after ISO 8601
_LISTED = 5  # lines named in an error before "... and N more"


@dataclass
class Series:
    """A numeric multivariate series, one row per time step.

    Attributes:
        columns: the F feature names, in the order of ``values``' columns (one-hot and calendar included).
        values: (N, F) float64, no NaN.
        target: the name of the column to forecast (one of ``columns``).
        times: (N,) ``datetime64[s]``, or None without a time column.
        lines: (N,) the file line of every row (1 is the header), for error messages and predictions.
        categories: the categories of every one-hot encoded column, e.g. ``{"cbwd": ["NE", "NW", "SE", "cv"]}``.
        source: where the series came from (a path, or a description).
    """

    columns: list[str]
    values: np.ndarray
    target: str
    times: np.ndarray | None = None
    lines: np.ndarray | None = None
    categories: dict[str, list[str]] = field(default_factory=dict)
    source: str = "series"

    def __post_init__(self):
        if self.values.ndim != 2 or self.values.shape[1] != len(self.columns):
            raise ValueError(f"Series: expected values (N, {len(self.columns)}) for columns {self.columns}, "
                             f"got {self.values.shape}")
        if self.target not in self.columns:
            raise ValueError(f"Series: the target {self.target!r} is not among the columns {self.columns}")
        if self.lines is None:
            self.lines = np.arange(2, len(self.values) + 2)

    def __len__(self) -> int:
        return self.values.shape[0]

    @property
    def target_index(self) -> int:
        return self.columns.index(self.target)


# ----- reading the file ------------------------------------------------------------------------------


# what a damaged archive raises while it is read (the bytes are in memory: an OSError is about the data):
# a bad header, an unsupported method, an encrypted member, a short read, a seek before the start
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError,
                   ValueError, zlib.error, lzma.LZMAError)


def _zip_member(path: Path, raw: bytes) -> bytes:
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except _ARCHIVE_ERRORS as e:
        raise ValueError(f"{path}: not a readable zip archive ({e})") from None
    with archive:
        members = [m for m in archive.namelist() if m.lower().endswith(".csv") and not m.startswith("__MACOSX")]
        if len(members) != 1:
            raise ValueError(f"{path}: expected a zip archive holding exactly one .csv file, "
                             f"got {members or 'none'}")
        try:
            return archive.read(members[0])
        except _ARCHIVE_ERRORS as e:
            raise ValueError(f"{path}: cannot read {members[0]} from the zip archive ({e})") from None


def _read_text(path: Path) -> str:
    """The file's text: a .gz decompressed, a .zip's one .csv member; UTF-8 (a BOM is dropped). A damaged
    archive or invalid UTF-8 is a ValueError naming the file (and the byte offset and line)."""
    raw = path.read_bytes()
    name = path.name.lower()
    if name.endswith(".zip"):
        raw = _zip_member(path, raw)
    elif name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: corrupt gzip data ({e})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}, line {line})") from None


def read_table(path) -> tuple[list[str], list[list[str]], list[int]]:
    """The header, the data rows (lists of stripped strings) and each row's file line (header = line 1).

    Blank lines are skipped; a row with a different number of fields than the header is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with io.StringIO(_read_text(path), newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or not any(h.strip() for h in header):
                raise ValueError(f"{path}: empty file, expected a header line of column names")
            header = [h.strip() for h in header]
            duplicates = sorted({h for h in header if header.count(h) > 1})
            if duplicates:
                raise ValueError(f"{path}: duplicate column names in the header: {', '.join(duplicates)}")
            rows, lines = [], []
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(header):
                    raise ValueError(f"{path}: line {reader.line_num} has {len(row)} fields, expected "
                                     f"{len(header)} like the header ({', '.join(header)})")
                rows.append([v.strip() for v in row])
                lines.append(reader.line_num)
    except csv.Error as e:
        raise ValueError(f"{path}: malformed CSV: {e}") from None
    return header, rows, lines


# ----- columns ---------------------------------------------------------------------------------------


def _check_names(path, header: list[str], names, option: str) -> None:
    unknown = [n for n in names if n not in header]
    if unknown:
        what = ", ".join(repr(n) for n in unknown)
        raise ValueError(f"{path}: unknown column {what} ({option}); available: {', '.join(header)}")


def _is_missing(cell: str) -> bool:
    return cell.lower() in MISSING


def _numbers(path, name: str, cells: list[str], lines: list[int], categorical_hint: bool) -> np.ndarray:
    """One column as float64, NaN for missing cells; the first non-number is an error naming line and value."""
    out = np.empty(len(cells))
    for i, cell in enumerate(cells):
        if _is_missing(cell):
            out[i] = math.nan
            continue
        try:
            out[i] = float(cell)
        except ValueError:
            hint = f" (pass --categorical {name} to one-hot encode a text column)" if categorical_hint else ""
            raise ValueError(f"{path}: column {name!r}, line {lines[i]}: {cell!r} is not a number{hint}") from None
        if not math.isfinite(out[i]):
            raise ValueError(f"{path}: column {name!r}, line {lines[i]}: {cell!r} is not a finite number")
    return out


def _one_hot(path, name: str, cells: list[str], lines: list[int], known: list[str] | None):
    """(N, K) one-hot columns for the categories (sorted, or the known ones), NaN rows for missing cells."""
    present = sorted({c for c in cells if not _is_missing(c)})
    categories = present if known is None else list(known)
    if not categories:
        raise ValueError(f"{path}: categorical column {name!r} has no values")
    index = {c: k for k, c in enumerate(categories)}
    out = np.zeros((len(cells), len(categories)))
    for i, cell in enumerate(cells):
        if _is_missing(cell):
            out[i] = math.nan
        elif cell in index:
            out[i, index[cell]] = 1.0
        else:
            raise ValueError(f"{path}: column {name!r}, line {lines[i]}: {cell!r} is not one of the categories "
                             f"seen in training ({', '.join(categories)})")
    return out, categories


# ----- time ------------------------------------------------------------------------------------------


def parse_times(path, names: list[str], columns: dict[str, list[str]], lines: list[int],
                time_format: str | None = None) -> np.ndarray:
    """(N,) datetime64[s] from one date/time column or from year/month/day/hour/minute/second columns."""
    for name in names:
        for i, cell in enumerate(columns[name]):
            if _is_missing(cell):
                raise ValueError(f"{path}: time column {name!r}, line {lines[i]}: missing value "
                                 "(a time stamp cannot be filled)")
    if len(names) == 1 and names[0].lower() != "year":  # one date/time column (e.g. "Month": 1949-01)
        return _parse_stamps(path, names[0], columns[names[0]], lines, time_format)
    if time_format is not None:
        raise ValueError(f"{path}: --time-format applies to one date/time column, got the part columns {names}")
    parts = {}
    for name in names:
        part = name.lower()
        if part not in TIME_PARTS or part in parts:
            raise ValueError(f"{path}: time columns given as parts must be named {', '.join(TIME_PARTS)} "
                             f"(each once), got {names}")
        parts[part] = _integers(path, name, columns[name], lines)
    if "year" not in parts:
        raise ValueError(f"{path}: time columns given as parts need a 'year' column, got {names}")
    n = len(lines)
    limits = {"year": YEARS, "month": (1, 12), "day": (1, 31), "hour": (0, 23), "minute": (0, 59), "second": (0, 59)}
    for part, (lo, hi) in limits.items():
        if part in parts:
            bad = np.flatnonzero((parts[part] < lo) | (parts[part] > hi))
            if bad.size:
                raise ValueError(f"{path}: time column {part!r}, line {lines[bad[0]]}: {parts[part][bad[0]]} is "
                                 f"outside {lo}..{hi}")
    month = parts.get("month", np.ones(n, np.int64))
    day = parts.get("day", np.ones(n, np.int64))
    months = (parts["year"] - 1970) * 12 + (month - 1)
    first_days = months.astype("datetime64[M]").astype("datetime64[D]")
    days = first_days + (day - 1).astype("timedelta64[D]")
    overflow = np.flatnonzero(days.astype("datetime64[M]") != months.astype("datetime64[M]"))
    if overflow.size:
        i = overflow[0]
        raise ValueError(f"{path}: line {lines[i]}: day {day[i]} does not exist in {parts['year'][i]}-{month[i]:02d}")
    seconds = parts.get("hour", 0) * 3600 + parts.get("minute", 0) * 60 + parts.get("second", 0)
    seconds = seconds * np.ones(n, np.int64)
    return days.astype("datetime64[s]") + seconds.astype("timedelta64[s]")


def _integers(path, name: str, cells: list[str], lines: list[int]) -> np.ndarray:
    values = _numbers(path, name, cells, lines, categorical_hint=False)
    bad = np.flatnonzero(values != np.round(values))
    if bad.size:
        raise ValueError(f"{path}: time column {name!r}, line {lines[bad[0]]}: {cells[bad[0]]!r} is not a whole number")
    bad = np.flatnonzero(np.abs(values) > 1e9)  # no time part is this large; int64 could not even hold 1e300
    if bad.size:
        raise ValueError(f"{path}: time column {name!r}, line {lines[bad[0]]}: {cells[bad[0]]!r} is out of range")
    return values.astype(np.int64)


def _parse_stamps(path, name: str, cells: list[str], lines: list[int], time_format: str | None) -> np.ndarray:
    formats = [time_format] if time_format else [None, *_TIME_FORMATS]  # None: ISO 8601 via numpy
    for fmt in formats:
        try:
            first = _parse_one(cells[0], fmt)
        except ValueError:
            continue
        del first
        out = np.empty(len(cells), "datetime64[s]")
        for i, cell in enumerate(cells):
            try:
                out[i] = _parse_one(cell, fmt)
            except ValueError:
                how = f"format {fmt!r}" if fmt else "ISO 8601 (e.g. 2010-01-01 13:00)"
                raise ValueError(f"{path}: time column {name!r}, line {lines[i]}: {cell!r} does not match {how} "
                                 "like the first row") from None
        years = out.astype("datetime64[Y]").astype(np.int64) + 1970
        bad = np.flatnonzero((years < YEARS[0]) | (years > YEARS[1]))
        if bad.size:  # numpy reads years of any length, and its seconds overflow silently past ~2.9e11 years
            raise ValueError(f"{path}: time column {name!r}, line {lines[bad[0]]}: {cells[bad[0]]!r} is outside the "
                             f"years {YEARS[0]}..{YEARS[1]}")
        return out
    tried = f"--time-format {time_format!r}" if time_format else "ISO 8601 or " + ", ".join(_TIME_FORMATS)
    raise ValueError(f"{path}: time column {name!r}, line {lines[0]}: cannot read {cells[0]!r} as a date/time "
                     f"({tried}); pass --time-format, e.g. '%d/%m/%Y %H:%M'")


def _parse_one(cell: str, fmt: str | None) -> np.datetime64:
    if fmt is None:
        if not cell[:1].isdigit() or "-" not in cell:  # numpy also reads bare numbers as years; we do not
            raise ValueError(cell)
        return np.datetime64(cell.replace(" ", "T", 1), "s")
    return np.datetime64(dt.datetime.strptime(cell, fmt), "s")


def calendar_features(times: np.ndarray, which) -> tuple[list[str], np.ndarray]:
    """sin/cos of the hour of day, day of week (Monday = 0) and day of year: names and (N, 2 * len(which))."""
    unknown = [w for w in which if w not in CALENDAR]
    if unknown:
        raise ValueError(f"calendar: expected features among {', '.join(CALENDAR)}, got {', '.join(unknown)}")
    seconds = (times - times.astype("datetime64[D]")).astype(np.int64)
    days = times.astype("datetime64[D]").astype(np.int64)  # days since 1970-01-01, a Thursday
    year_start = times.astype("datetime64[Y]")
    year_days = ((year_start + 1).astype("datetime64[D]") - year_start.astype("datetime64[D]")).astype(np.int64)
    day_of_year = (times.astype("datetime64[D]") - year_start.astype("datetime64[D]")).astype(np.int64)
    phase = {
        "hour": seconds / 86400.0,
        "dow": ((days + 3) % 7 + seconds / 86400.0) / 7.0,
        "doy": (day_of_year + seconds / 86400.0) / year_days,
    }
    names, columns = [], []
    for w in which:
        angle = 2 * np.pi * phase[w]
        names += [f"{w}_sin", f"{w}_cos"]
        columns += [np.sin(angle), np.cos(angle)]
    return names, np.stack(columns, axis=1)


# ----- missing values --------------------------------------------------------------------------------


def _line_ranges(lines: np.ndarray) -> str:
    """'2-25, 40, 52-53' for the first few runs of consecutive lines."""
    runs, start = [], 0
    for i in range(1, len(lines) + 1):
        if i == len(lines) or lines[i] != lines[i - 1] + 1:
            runs.append(f"{lines[start]}" if i - 1 == start else f"{lines[start]}-{lines[i - 1]}")
            start = i
    more = f" and {len(runs) - _LISTED} more runs" if len(runs) > _LISTED else ""
    return ", ".join(runs[:_LISTED]) + more


def fill_missing(path, values: np.ndarray, columns: list[str], lines: np.ndarray, fill: str | None):
    """Apply the fill policy to NaN cells; returns (values, lines) (fewer rows after ``drop``)."""
    missing = np.isnan(values)
    if not missing.any():
        return values, lines
    if fill is None:
        counts = missing.sum(axis=0)
        where = "; ".join(f"column {columns[j]!r}: {counts[j]:,} at lines {_line_ranges(lines[missing[:, j]])}"
                          for j in np.flatnonzero(counts))
        raise ValueError(f"{path}: {int(counts.sum()):,} missing values ({where}); "
                         "pass --fill ffill, interpolate or drop")
    if fill not in FILLS:
        raise ValueError(f"fill: expected one of {', '.join(FILLS)}, got {fill!r}")
    if fill == "drop":
        keep = ~missing.any(axis=1)
        if not keep.any():
            raise ValueError(f"{path}: every row has a missing value; --fill drop would leave nothing")
        log.info("%s: dropped %d rows with missing values", path, int((~keep).sum()))
        return values[keep], lines[keep]
    values = values.copy()
    positions = np.arange(len(values))
    for j in np.flatnonzero(missing.any(axis=0)):
        ok = ~missing[:, j]
        if not ok.any():
            raise ValueError(f"{path}: column {columns[j]!r} has no values at all; nothing to fill it from")
        if fill == "interpolate":
            values[:, j] = np.interp(positions, positions[ok], values[ok, j])
        else:  # ffill: index of the last observation at or before each row; before the first, the first one
            last = np.maximum.accumulate(np.where(ok, positions, -1))
            last[last < 0] = np.flatnonzero(ok)[0]
            values[:, j] = values[last, j]
    return values, lines


# ----- the whole thing -------------------------------------------------------------------------------


def load_series(path, *, target: str, features=None, time=None, time_format: str | None = None,
                categorical=(), fill: str | None = None, calendar=(), categories: dict | None = None) -> Series:
    """Read a CSV file into a :class:`Series` (see the module docstring for every option).

    ``categories`` fixes the one-hot categories (those saved with a trained run), so that a new file is
    encoded exactly as the training file was; a category not among them is an error.

    Example::

        >>> s = load_series("pollution.csv", target="TEMP", time=["year", "month", "day", "hour"],
        ...                 features=["pm2.5", "DEWP", "TEMP", "PRES", "cbwd", "Iws"], categorical=["cbwd"],
        ...                 fill="ffill", calendar=["hour", "doy"])
        >>> s.values.shape, s.columns[:3]
        ((43824, 13), ['pm2.5', 'DEWP', 'TEMP'])
    """
    time, categorical, calendar = list(time or []), list(categorical), list(calendar)
    features = None if features is None else list(features)
    if fill is not None and fill not in FILLS:
        raise ValueError(f"fill: expected one of {', '.join(FILLS)}, got {fill!r}")
    header, rows, lines = read_table(path)
    _check_names(path, header, [target], "--target")
    _check_names(path, header, time, "--time")
    _check_names(path, header, features or [], "--features")
    _check_names(path, header, categorical, "--categorical")
    if not rows:
        raise ValueError(f"{path}: no data rows after the header")
    if features is None:
        features = [h for h in header if h not in time]
    if target not in features:
        features.append(target)  # the target's own past is always an input
    if target in categorical:
        raise ValueError(f"{path}: the target {target!r} must be numeric, not --categorical")
    outside = [c for c in categorical if c not in features]
    if outside:
        raise ValueError(f"{path}: --categorical {', '.join(outside)} not among the features ({', '.join(features)})")
    if calendar and not time:
        raise ValueError(f"{path}: calendar features ({', '.join(calendar)}) need --time, the time column(s)")
    by_name = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    names, blocks, found = [], [], {}
    for name in features:
        if name in categorical:
            block, found[name] = _one_hot(path, name, by_name[name], lines, (categories or {}).get(name))
            names += [f"{name}={c}" for c in found[name]]
        else:
            block = _numbers(path, name, by_name[name], lines, categorical_hint=True)[:, None]
            names.append(name)
        blocks.append(block)
    values = np.concatenate(blocks, axis=1)
    times = parse_times(path, time, by_name, lines, time_format) if time else None
    line_numbers = np.asarray(lines)
    if times is not None:  # fill/drop on values and times together
        values = np.concatenate([values, times.astype(np.int64)[:, None].astype(np.float64)], axis=1)
        names_with_time = names + ["<time>"]
    else:
        names_with_time = names
    values, line_numbers = fill_missing(path, values, names_with_time, line_numbers, fill)
    if times is not None:
        times = values[:, -1].astype(np.int64).astype("datetime64[s]")
        values = values[:, :-1]
        order = np.diff(times.astype(np.int64))
        if (order <= 0).any():
            i = int(np.flatnonzero(order <= 0)[0])
            raise ValueError(f"{path}: time goes backwards or repeats at line {line_numbers[i + 1]} "
                             f"({times[i + 1]} after {times[i]}); expected rows in time order")
    if calendar:
        cal_names, cal_values = calendar_features(times, calendar)
        names += cal_names
        values = np.concatenate([values, cal_values], axis=1)
    return Series(names, values, target, times=times, lines=line_numbers, categories=found, source=str(path))


# ----- splits ----------------------------------------------------------------------------------------


SPLITS = ("train", "valid", "test")


def parse_split(text: str) -> tuple:
    """``"0.6,0.2,0.2"`` (fractions) or ``"200000,300000"`` (row indices where valid and test start)."""
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        raise ValueError(f"split: expected fractions like 0.6,0.2,0.2 or row indices like 200000,300000, "
                         f"got {text!r}") from None
    if all(p.is_integer() and p > 1 for p in parts):
        return tuple(int(p) for p in parts)
    return tuple(parts)


def chronological_split(n: int, split) -> dict[str, tuple[int, int]]:
    """Train / valid / test row ranges ``[start, stop)`` in time order.

    ``split`` is three fractions summing to 1 (``(0.6, 0.2, 0.2)``: the first 60 % of rows train, the next
    20 % validate, the last 20 % test) or two row indices where validation and test start
    (``(200000, 300000)``, lecture 003's Jena ranges).
    """
    split = tuple(split)
    if len(split) == 2 and all(isinstance(s, int) and not isinstance(s, bool) for s in split):
        valid_start, test_start = split
        if not 0 < valid_start < test_start < n:
            raise ValueError(f"split: expected row indices 0 < valid start < test start < {n} (the rows), "
                             f"got {valid_start}, {test_start}")
    elif len(split) == 3:
        if any(not 0 < s < 1 for s in split) or abs(sum(split) - 1) > 1e-9:
            raise ValueError(f"split: expected three fractions in (0, 1) summing to 1, got {split}")
        valid_start, test_start = round(n * split[0]), round(n * (split[0] + split[1]))
        if not 0 < valid_start < test_start < n:
            raise ValueError(f"split: {n} rows are too few to cut into {split}")
    else:
        raise ValueError(f"split: expected three fractions or two row indices, got {split}")
    return {"train": (0, valid_start), "valid": (valid_start, test_start), "test": (test_start, n)}
