"""``cgm-ray metrics`` of vendor exports (issue #15): each reader's fixture gives the mean, the time
in 70-180 mg/dL and the number of readings worked out by hand from the fixture's values, which
are written out here (mmol/L ones times the factor, each reading delivered twice counted once).
"""

from __future__ import annotations

import pytest

from cgm_ray.cli import main
from cgm_ray.cli import metrics as metrics_cli

from .conftest import DATA

EXPORTS = DATA / "exports"
MGDL_PER_MMOL, TIDEPOOL_FACTOR = 18.0182, 18.01559


def _mmol(values: list[float], factor: float = MGDL_PER_MMOL) -> list[float]:
    return [v * factor for v in values]


# file, --tz, the distinct readings in mg/dL as the file gives them
CASES = {
    "Clarity": ("Clarity_Export_Doe_Jane_2024-03-05_101500.csv", "Europe/Berlin",
                [120, 135, 160, 185, 210, 400, 250, 190, 150, 95, 65, 40, 72]),  # High 400, Low 40
    "Clarity mmol/L": ("clarity_mmol.csv", "Europe/Berlin",
                       _mmol([5.5, 6.1, 7.8, 10.2, 3.6, 4.4]) + [400, 40]),
    "LibreView US": ("JaneDoe_glucose_3-6-2024.csv", "Europe/Berlin",
                     [142, 140, 138, 131, 122, 110, 96, 84, 71, 68, 66]),  # historic and scans
    "LibreView German mmol/L": ("libreview_de_mmol.csv", "Europe/Berlin",
                                _mmol([5.2, 5.8, 6.9, 8.4, 10.1, 6.4, 11.3, 9.7, 7.2, 4.1, 3.5])),
    "LibreView French": ("libreview_fr.csv", "Europe/Paris", [105, 118, 126, 190]),
    "LibreView Spanish": ("libreview_es.csv", "Europe/Madrid", [99, 64, 88, 144]),
    "LibreView Italian": ("libreview_it.csv", "Europe/Rome", [201, 176, 150, 122]),
    "Tidepool": ("tidepool.json", "Europe/Berlin",
                 _mmol([5.550747991045533, 6.993942468717372, 8.548151906210121, 10.10236134370287,
                        3.774508633910963, 5.051180671851435], TIDEPOOL_FACTOR)),
    "OhioT1DM": ("559-ws-training.xml", "America/New_York",
                 [101, 98, 96, 99, 104, 112, 125, 141, 168, 197, 226, 251, 65]),
    "Nightscout dump": ("ns_entries.json", None, [120, 132, 149, 171, 188, 176, 158, 139]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_metrics_of_each_export_agree_with_a_hand_computation(case, tmp_path):
    name, tz, values = CASES[case]
    table = metrics_cli.run(EXPORTS / name, tmp_path / "m.json", tz=tz, patient="p1")
    loaded = metrics_cli.load_input(EXPORTS / name, tz, "p1")
    in_range = [v for v in values if 70 <= v <= 180]
    assert table.column("id").to_pylist() == ["p1"]
    assert len(loaded.readings.gl_mgdl) == len(values)
    assert table.column("mean")[0].as_py() == pytest.approx(sum(values) / len(values), rel=1e-6)
    assert table.column("in_range_70_180")[0].as_py() == pytest.approx(
        100 * len(in_range) / len(values), rel=1e-9)


def test_duplicates_are_counted_once_and_local_times_stay_wall_clock_without_a_zone():
    wall = metrics_cli.load_input(EXPORTS / "Clarity_Export_Doe_Jane_2024-03-05_101500.csv")
    utc = metrics_cli.load_input(EXPORTS / "Clarity_Export_Doe_Jane_2024-03-05_101500.csv",
                                 "Europe/Berlin")
    assert wall.duplicates == utc.duplicates == 1
    assert (wall.readings.time_ns - utc.readings.time_ns == 3_600 * 10**9).all()  # CET = UTC+1
    assert wall.readings.ids.tolist() == ["Jane Doe"]
    assert (wall.format, wall.units_found) == ("Dexcom Clarity", "mg/dL")


def test_the_command_says_what_it_read(tmp_path, capsys):
    out = tmp_path / "m.csv"
    assert main(["metrics", str(EXPORTS / "clarity_mmol.csv"), "--out", str(out),
                 "--tz", "Europe/Berlin", "--patient", "p9"]) == 0
    printed = capsys.readouterr().out
    assert "Dexcom Clarity, glucose in mmol/L, 8 readings (0 duplicates dropped)" in printed
    assert "note: 3 metadata row (no timestamp)" in printed
    assert out.read_text().splitlines()[1].startswith('"p9"')


@pytest.mark.parametrize(("argv", "message"), [
    (["--tz", "Mars/Olympus"], "cgm-ray: error: tz: unknown time zone 'Mars/Olympus'"),
    (["--tz", "UTC", "--patient", ""], "cgm-ray: error: patient: empty"),
])
def test_bad_options_are_one_line_naming_the_option(tmp_path, capsys, argv, message):
    code = main(["metrics", str(EXPORTS / "tidepool.json"), "--out", str(tmp_path / "m.csv"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().startswith(message) and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("name", "message"), [
    ("unknown.csv", "no known glucose columns: expected iglu's ['id', 'time', 'gl'] or an export of "
                    "Dexcom Clarity (header with 'Timestamp (YYYY-MM-DDThh:mm:ss)'"),
    ("clarity_truncated.csv", "line 6: 7 of the header's 14 fields: the file is truncated"),
    ("libreview_nl.csv", "no LibreView header recognised on rows 1-3"),
])
def test_unusable_files_are_refused_in_one_line(tmp_path, capsys, name, message):
    code = main(["metrics", str(EXPORTS / name), "--out", str(tmp_path / "m.csv"), "--tz", "UTC"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.csv").exists()
