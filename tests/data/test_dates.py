"""The generated dates: every format written out for one day, ISO targets, seeds, held-out splits."""
import datetime as dt
import random

import pytest

from rnnkit.data.dates import FORMATS, date_pairs, date_splits, human, ordinal

DAY = dt.date(2021, 3, 5)  # a Friday
EXPECTED = {
    "month d, yyyy": "March 5, 2021",
    "month dd, yyyy": "March 05, 2021",
    "d month yyyy": "5 March 2021",
    "dd mon yyyy": "05 Mar 2021",
    "mon d yyyy": "Mar 5 2021",
    "mon d, yy": "Mar 5, '21",
    "weekday, month d, yyyy": "Friday, March 5, 2021",
    "wkd d mon yyyy": "Fri 5 Mar 2021",
    "the dth of month yyyy": "the 5th of March 2021",
    "month dth, yyyy": "March 5th, 2021",
    "dd-mon-yyyy": "05-Mar-2021",
    "dd.mm.yyyy": "05.03.2021",
    "d.m.yy": "5.3.21",
    "mm/dd/yyyy": "03/05/2021",
    "m/d/yy": "3/5/21",
    "yyyy/mm/dd": "2021/03/05",
    "yyyymmdd": "20210305",
    "MONTH D, YYYY": "MARCH 5, 2021",
    "month d yyyy (lower case)": "march 5 2021",
}


def test_every_format_written_out():
    assert set(EXPECTED) == set(FORMATS)
    for name, text in EXPECTED.items():
        assert human(DAY, name) == text, name
    with pytest.raises(ValueError, match="expected a format in"):
        human(DAY, "dd/mm/yyyy")


def test_ordinals():
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st"]


def test_pairs_are_seeded_and_their_targets_are_the_dates():
    a, b = date_pairs(200, random.Random(3)), date_pairs(200, random.Random(3))
    assert a.sources == b.sources and a.targets == b.targets
    assert a.sources != date_pairs(200, random.Random(4)).sources
    for source, target in zip(a.sources, a.targets):
        d = dt.date.fromisoformat(target)
        assert dt.date(1950, 1, 1) <= d <= dt.date(2049, 12, 31)
        assert source in {human(d, f) for f in FORMATS}


def test_held_out_dates_are_never_training_sources():
    splits = date_splits(3000, 300, 300, seed=1)
    assert [len(splits[k]) for k in ("train", "valid", "test")] == [3000, 300, 300]
    seen = set(splits["train"].sources)
    assert not seen & set(splits["valid"].sources) and not seen & set(splits["test"].sources)
    assert date_splits(3000, 300, 300, seed=1)["test"].sources == splits["test"].sources
    with pytest.raises(ValueError, match="at least 1 pair"):
        date_splits(10, 0, 5)
