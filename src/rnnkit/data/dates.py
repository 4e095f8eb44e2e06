"""The date-normalisation task: dates as people write them -> ISO 8601 ``YYYY-MM-DD``, generated from a seed.

    random day in 1950-01-01 .. 2049-12-31 ──one of FORMATS──> "Friday, March 5, 2021" ──> "2021-03-05"

Every format is unambiguous: month names are English; ``dd.mm.yyyy`` (dots) is day first, ``mm/dd/yyyy``
(slashes) month first, ``yyyy/mm/dd`` and ``yyyymmdd`` year first; a two-digit year means 1950-2049.
Month names and weekdays are spelled here, not by ``strftime``, so the data do not depend on the locale.
The held-out splits never contain a source string that is also in the training split.
"""
from __future__ import annotations

import datetime as dt
import random

from .pairs import Pairs

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
FIRST_DAY, LAST_DAY = dt.date(1950, 1, 1), dt.date(2049, 12, 31)


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st, 22nd, 23rd, ..., 31st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _parts(d: dt.date) -> dict:
    month = MONTHS[d.month - 1]
    return {"d": d.day, "dd": f"{d.day:02d}", "m": d.month, "mm": f"{d.month:02d}", "yyyy": d.year,
            "yy": f"{d.year % 100:02d}", "month": month, "mon": month[:3], "weekday": WEEKDAYS[d.weekday()],
            "wkd": WEEKDAYS[d.weekday()][:3], "dth": ordinal(d.day)}


# name -> how to write the date (str.format fields from _parts)
FORMATS = {
    "month d, yyyy": "{month} {d}, {yyyy}",
    "month dd, yyyy": "{month} {dd}, {yyyy}",
    "d month yyyy": "{d} {month} {yyyy}",
    "dd mon yyyy": "{dd} {mon} {yyyy}",
    "mon d yyyy": "{mon} {d} {yyyy}",
    "mon d, yy": "{mon} {d}, '{yy}",
    "weekday, month d, yyyy": "{weekday}, {month} {d}, {yyyy}",
    "wkd d mon yyyy": "{wkd} {d} {mon} {yyyy}",
    "the dth of month yyyy": "the {dth} of {month} {yyyy}",
    "month dth, yyyy": "{month} {dth}, {yyyy}",
    "dd-mon-yyyy": "{dd}-{mon}-{yyyy}",
    "dd.mm.yyyy": "{dd}.{mm}.{yyyy}",
    "d.m.yy": "{d}.{m}.{yy}",
    "mm/dd/yyyy": "{mm}/{dd}/{yyyy}",
    "m/d/yy": "{m}/{d}/{yy}",
    "yyyy/mm/dd": "{yyyy}/{mm}/{dd}",
    "yyyymmdd": "{yyyy}{mm}{dd}",
    "MONTH D, YYYY": "{month_upper} {d}, {yyyy}",
    "month d yyyy (lower case)": "{month_lower} {d} {yyyy}",
}


def human(d: dt.date, fmt: str) -> str:
    """The date in the named format: ``human(date(2021, 3, 5), "the dth of month yyyy")`` -> "the 5th of March 2021"."""
    if fmt not in FORMATS:
        raise ValueError(f"dates: expected a format in {list(FORMATS)}, got {fmt!r}")
    parts = _parts(d)
    return FORMATS[fmt].format(**parts, month_upper=parts["month"].upper(), month_lower=parts["month"].lower())


def random_date(rng: random.Random) -> dt.date:
    return FIRST_DAY + dt.timedelta(days=rng.randrange((LAST_DAY - FIRST_DAY).days + 1))


def date_pairs(n: int, rng: random.Random, *, exclude: set[str] | frozenset = frozenset(), name: str = "dates"
               ) -> Pairs:
    """n (human date, ISO date) pairs, every format equally likely; sources in ``exclude`` are drawn again."""
    if n < 1:
        raise ValueError(f"dates: expected at least 1 pair per split, got {n}")
    formats = list(FORMATS)
    sources, targets = [], []
    while len(sources) < n:
        d = random_date(rng)
        source = human(d, rng.choice(formats))
        if source in exclude:
            continue
        sources.append(source)
        targets.append(d.isoformat())
    return Pairs(sources, targets, [f"{name} pair {i}" for i in range(n)])


def date_splits(train_size: int, valid_size: int, test_size: int, seed: int = 0) -> dict[str, Pairs]:
    """{"train", "valid", "test"} from one seed; valid and test hold no source string seen in training."""
    rng = random.Random(seed)
    train = date_pairs(train_size, rng, name=f"dates (seed {seed}) train")
    seen = set(train.sources)
    return {"train": train,
            "valid": date_pairs(valid_size, rng, exclude=seen, name=f"dates (seed {seed}) valid"),
            "test": date_pairs(test_size, rng, exclude=seen, name=f"dates (seed {seed}) test")}
