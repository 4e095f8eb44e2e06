"""Reading numeric CSV series: columns by name, one-hot categories, fill policies, time and calendar features,
chronological splits, and a clear error for every kind of bad input."""
from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data.series_csv import (calendar_features, chronological_split, load_series, parse_split,
                                    read_table)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
BEIJING = SHARED / "beijing_pm25" / "pollution.csv"
UNIVARIATE = SHARED / "univariate_timeseries"


def shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found: {path.resolve()}")
    return path


def write(tmp_path, text: str, name="s.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


SMALL = "t,a,b,wind\n2020-01-01 00:00,1,10,N\n2020-01-01 01:00,NA,11,S\n2020-01-01 02:00,3,,N\n" \
        "2020-01-01 03:00,4,13,\n2020-01-01 04:00,5,14,S\n"


# ----- the real files ----------------------------------------------------------------------------------


def test_beijing_with_one_hot_wind_fill_and_calendar():
    s = load_series(shared(BEIJING), target="TEMP", time=["year", "month", "day", "hour"],
                    features=["pm2.5", "DEWP", "TEMP", "PRES", "cbwd", "Iws"], categorical=["cbwd"],
                    fill="ffill", calendar=["hour", "doy"])
    assert s.columns == ["pm2.5", "DEWP", "TEMP", "PRES", "cbwd=NE", "cbwd=NW", "cbwd=SE", "cbwd=cv", "Iws",
                         "hour_sin", "hour_cos", "doy_sin", "doy_cos"]
    assert s.values.shape == (43824, 13) and not np.isnan(s.values).any()
    assert s.categories == {"cbwd": ["NE", "NW", "SE", "cv"]}
    assert np.array_equal(s.values[:, 4:8].sum(axis=1), np.ones(43824))
    assert s.times[0] == np.datetime64("2010-01-01T00:00") and s.times[-1] == np.datetime64("2014-12-31T23:00")
    assert s.target_index == 2 and s.values[0, 2] == -11 and s.lines[0] == 2
    assert s.values[0, 0] == 129.0  # pm2.5 is NA for the first 24 hours: filled from the first observation


def test_beijing_missing_values_are_an_error_naming_the_column_and_lines():
    with pytest.raises(ValueError, match=r"pollution.csv: 2,067 missing values \(column 'pm2.5': 2,067 at lines "
                                         r"2-25, 547-613, 1060, 1879-1880, 1945 and 209 more runs\); "
                                         r"pass --fill ffill, interpolate or drop"):
        load_series(shared(BEIJING), target="TEMP", features=["pm2.5", "TEMP"])


def test_beijing_text_column_without_categorical_names_line_and_value():
    with pytest.raises(ValueError, match=r"column 'cbwd', line 2: 'NW' is not a number \(pass --categorical cbwd"):
        load_series(shared(BEIJING), target="TEMP", features=["TEMP", "cbwd"])


def test_unknown_column_lists_the_available_ones():
    with pytest.raises(ValueError, match=r"unknown column 'temp' \(--target\); available: No, year, month, day, hour, "
                                         r"pm2.5, DEWP, TEMP, PRES, cbwd, Iws, Is, Ir"):
        load_series(shared(BEIJING), target="temp")
    with pytest.raises(ValueError, match=r"unknown column 'wind', 'rain' \(--features\)"):
        load_series(shared(BEIJING), target="TEMP", features=["wind", "rain"])


@pytest.mark.parametrize("name, column, count, first", [
    ("airline-passengers.csv", "Passengers", 144, np.datetime64("1949-01-01")),
    ("daily-min-temperatures.csv", "Temp", 3650, np.datetime64("1981-01-01")),
    ("monthly-sunspots.csv", "Sunspots", 2820, np.datetime64("1749-01-01")),
])
def test_univariate_series_with_an_iso_time_column(name, column, count, first):
    s = load_series(shared(UNIVARIATE / name), target=column, time=[next(iter(read_table(UNIVARIATE / name)[0]))])
    assert s.columns == [column] and len(s) == count and s.times[0] == first


# ----- options on small files --------------------------------------------------------------------------


def test_fill_policies(tmp_path):
    path = write(tmp_path, SMALL)
    common = dict(target="a", features=["a", "b"], time=["t"])
    ffill = load_series(path, fill="ffill", **common)
    assert ffill.values.tolist() == [[1, 10], [1, 11], [3, 11], [4, 13], [5, 14]]
    interp = load_series(path, fill="interpolate", **common)
    assert interp.values.tolist() == [[1, 10], [2, 11], [3, 12], [4, 13], [5, 14]]
    drop = load_series(path, fill="drop", **common)
    assert drop.values.tolist() == [[1, 10], [4, 13], [5, 14]]
    assert drop.lines.tolist() == [2, 5, 6] and drop.times[1] == np.datetime64("2020-01-01T03:00")
    with pytest.raises(ValueError, match="expected one of ffill, interpolate, drop, got 'mean'"):
        load_series(path, fill="mean", **common)


def test_ffill_before_the_first_observation_takes_the_first_one(tmp_path):
    path = write(tmp_path, "a,b\nNA,1\n,2\n5,3\nNA,4\n")
    assert load_series(path, target="b", fill="ffill").values[:, 0].tolist() == [5, 5, 5, 5]


def test_one_hot_with_missing_category_and_known_categories(tmp_path):
    path = write(tmp_path, SMALL)
    s = load_series(path, target="b", features=["b", "wind"], categorical=["wind"], fill="ffill")
    assert s.columns == ["b", "wind=N", "wind=S"]
    assert s.values[:, 1:].tolist() == [[1, 0], [0, 1], [1, 0], [1, 0], [0, 1]]  # line 5's empty wind: ffill
    s2 = load_series(path, target="b", features=["b", "wind"], categorical=["wind"], fill="ffill",
                     categories={"wind": ["E", "N", "S"]})
    assert s2.columns == ["b", "wind=E", "wind=N", "wind=S"]
    with pytest.raises(ValueError, match=r"column 'wind', line 3: 'S' is not one of the categories seen in "
                                         r"training \(E, N\)"):
        load_series(path, target="b", features=["b", "wind"], categorical=["wind"], fill="ffill",
                    categories={"wind": ["E", "N"]})


def test_the_target_is_always_an_input_and_default_features_skip_the_time(tmp_path):
    path = write(tmp_path, "t,x,y\n2020-01-01,1,2\n2020-01-02,3,4\n")
    assert load_series(path, target="y", features=["x"], time=["t"]).columns == ["x", "y"]
    assert load_series(path, target="y", time=["t"]).columns == ["x", "y"]


def test_calendar_features_are_on_the_unit_circle():
    times = np.array(["2024-01-01T06:00", "2024-01-03T00:00", "2024-07-02T00:00"], dtype="datetime64[s]")
    names, values = calendar_features(times, ["hour", "dow", "doy"])
    assert names == ["hour_sin", "hour_cos", "dow_sin", "dow_cos", "doy_sin", "doy_cos"]
    np.testing.assert_allclose(values[0, :2], [1, 0], atol=1e-12)  # 6 h: a quarter of the day
    np.testing.assert_allclose(values[1, :2], [0, 1], atol=1e-12)  # midnight
    # 2024-01-01 is a Monday (0), 2024-01-03 a Wednesday (2): phase (2 + 0) / 7
    np.testing.assert_allclose(values[1, 2:4], [np.sin(4 * np.pi / 7), np.cos(4 * np.pi / 7)], atol=1e-12)
    # 2024 is a leap year: 2 July 00:00 is day 183 of 366 (1 January = 0), exactly half way
    np.testing.assert_allclose(values[2, 4:6], [0, -1], atol=1e-12)
    np.testing.assert_allclose((values[:, 0::2] ** 2 + values[:, 1::2] ** 2), 1)


def test_time_formats(tmp_path):
    jena = write(tmp_path, '"Date Time",p,T\n01.01.2009 00:10:00,996.52,-8.02\n01.01.2009 00:20:00,996.57,-8.41\n')
    s = load_series(jena, target="T", time=["Date Time"], calendar=["hour"])
    assert s.times.tolist()[1] == np.datetime64("2009-01-01T00:20").astype(object)
    assert s.columns == ["p", "T", "hour_sin", "hour_cos"]
    us = write(tmp_path, "when,v\n01/31/2020 13:00,1\n02/01/2020 13:00,2\n", "us.csv")
    with pytest.raises(ValueError, match=r"time column 'when', line 2: cannot read '01/31/2020 13:00' as a date/time"):
        load_series(us, target="v", time=["when"])
    s = load_series(us, target="v", time=["when"], time_format="%m/%d/%Y %H:%M")
    assert s.times[0] == np.datetime64("2020-01-31T13:00")
    with pytest.raises(ValueError, match=r"line 3: '2020-02-01' does not match format"):
        load_series(write(tmp_path, "when,v\n01/31/2020,1\n2020-02-01,2\n", "mixed.csv"), target="v", time=["when"],
                    time_format="%m/%d/%Y")


def test_time_parts_and_their_errors(tmp_path):
    good = write(tmp_path, "year,month,day,hour,v\n2021,2,28,23,1\n2021,3,1,0,2\n")
    assert load_series(good, target="v", time=["year", "month", "day", "hour"]).times.tolist()[1] == \
        np.datetime64("2021-03-01T00:00").astype(object)
    bad_day = write(tmp_path, "year,month,day,v\n2021,2,28,1\n2021,2,30,2\n", "d.csv")
    with pytest.raises(ValueError, match="line 3: day 30 does not exist in 2021-02"):
        load_series(bad_day, target="v", time=["year", "month", "day"])
    bad_hour = write(tmp_path, "year,hour,v\n2021,24,1\n", "h.csv")
    with pytest.raises(ValueError, match=r"time column 'hour', line 2: 24 is outside 0..23"):
        load_series(bad_hour, target="v", time=["year", "hour"])
    backwards = write(tmp_path, "year,month,v\n2021,2,1\n2021,1,2\n", "b.csv")
    with pytest.raises(ValueError, match="time goes backwards or repeats at line 3"):
        load_series(backwards, target="v", time=["year", "month"])
    with pytest.raises(ValueError, match="calendar features \\(hour\\) need --time"):
        load_series(good, target="v", calendar=["hour"])


def test_ragged_row_names_its_line(tmp_path):
    path = write(tmp_path, "a,b,c\n1,2,3\n4,5\n6,7,8\n")
    with pytest.raises(ValueError, match=r"s.csv: line 3 has 2 fields, expected 3 like the header \(a, b, c\)"):
        load_series(path, target="a")


def test_non_numeric_and_non_finite_values_name_line_and_value(tmp_path):
    path = write(tmp_path, "a,b\n1,2\n3,x7\n")
    with pytest.raises(ValueError, match=r"column 'b', line 3: 'x7' is not a number"):
        load_series(path, target="a")
    with pytest.raises(ValueError, match=r"column 'b', line 2: 'inf' is not a finite number"):
        load_series(write(tmp_path, "a,b\n1,inf\n", "inf.csv"), target="a")


def test_empty_header_only_and_duplicate_columns(tmp_path):
    with pytest.raises(ValueError, match="empty file, expected a header line"):
        load_series(write(tmp_path, "", "e.csv"), target="a")
    with pytest.raises(ValueError, match="no data rows after the header"):
        load_series(write(tmp_path, "a,b\n", "h.csv"), target="a")
    with pytest.raises(ValueError, match="duplicate column names in the header: a"):
        load_series(write(tmp_path, "a,b,a\n1,2,3\n", "d.csv"), target="b")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_series(tmp_path / "missing.csv", target="a")


def test_zip_and_gzip_archives(tmp_path):
    text = "x,y\n1,2\n3,4\n"
    with zipfile.ZipFile(tmp_path / "one.csv.zip", "w") as z:
        z.writestr("one.csv", text)
    with gzip.open(tmp_path / "one.csv.gz", "wt") as f:
        f.write(text)
    for name in ("one.csv.zip", "one.csv.gz"):
        assert load_series(tmp_path / name, target="y").values.tolist() == [[1, 2], [3, 4]]
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as z:
        z.writestr("a.csv", text)
        z.writestr("b.csv", text)
    with pytest.raises(ValueError, match="expected a zip archive holding exactly one .csv file"):
        load_series(tmp_path / "two.zip", target="y")


# ----- splits ------------------------------------------------------------------------------------------


def test_chronological_split_by_fraction_and_by_row():
    assert chronological_split(43824, (0.6, 0.2, 0.2)) == {"train": (0, 26294), "valid": (26294, 35059),
                                                           "test": (35059, 43824)}
    assert chronological_split(420551, (200000, 300000)) == {"train": (0, 200000), "valid": (200000, 300000),
                                                             "test": (300000, 420551)}
    assert parse_split("0.6,0.2,0.2") == (0.6, 0.2, 0.2) and parse_split("200000,300000") == (200000, 300000)
    with pytest.raises(ValueError, match="three fractions in \\(0, 1\\) summing to 1"):
        chronological_split(100, (0.6, 0.3, 0.3))
    with pytest.raises(ValueError, match="0 < valid start < test start < 100"):
        chronological_split(100, (80, 60))
    with pytest.raises(ValueError, match="3 rows are too few"):
        chronological_split(3, (0.8, 0.1, 0.1))
    with pytest.raises(ValueError, match="got 'a,b'"):
        parse_split("a,b")
