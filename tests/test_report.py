"""The doctor's report: self-contained HTML, 2-page PDF, numbers and target marks as computed."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from cgm_ray.cli import metrics as metrics_cli
from cgm_ray.errors import ConfigError
from cgm_ray.glucose.grid import NS_PER_DAY, NS_PER_MIN, group_readings
from cgm_ray.glucose.insulin_totals import BasalSchedule, TempBasals
from cgm_ray.glucose.metrics import glucose_metrics
from cgm_ray.glucose.targets import CONSENSUS_TARGETS
from cgm_ray.lake.report import ReportFiles, render_report
from cgm_ray.lake.treatments import Basal, Treatments
from tests.conftest import IGLU_CSV

T0_NS = int(np.datetime64("2024-03-01T00:00:00", "ns").astype(np.int64))
ODD_ID = 'pt <&> "7"'


class _Tables(HTMLParser):
    """Collects every table of a page as {caption: [row cells]}."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._caption: str | None = None
        self._text: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "caption":
            self._text = []
        elif tag == "tr":
            self.tables[self._caption].append([])
        elif tag in ("td", "th"):
            self._text = []

    def handle_endtag(self, tag):
        if tag == "caption":
            self._caption = "".join(self._text)
            self.tables[self._caption] = []
        elif tag in ("td", "th"):
            self.tables[self._caption][-1].append("".join(self._text))
        if tag in ("caption", "td", "th"):
            self._text = None

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)


def _tables(html_text: str) -> dict[str, dict[str, list[str]]]:
    """Each table as {first cell: remaining cells}."""
    parser = _Tables()
    parser.feed(html_text)
    return {caption: {row[0]: row[1:] for row in rows} for caption, rows in parser.tables.items()}


def _pdf_pages(path: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", path.read_bytes()))


def _synthetic_days(days: int = 14) -> tuple[np.ndarray, np.ndarray]:
    """Readings every 5 min; each day 216 at 120, 14 at 60 and 58 at 200 mg/dL.

    Time 70-180 is 75.0 % (met), <70 4.9 % (not met: the target is < 4 %), >180 20.1 % (met).
    """
    day = np.concatenate([np.full(100, 120.0), np.full(14, 60.0), np.full(116, 120.0), np.full(58, 200.0)])
    gl = np.tile(day, days)
    return T0_NS + 5 * NS_PER_MIN * np.arange(len(gl), dtype=np.int64), gl


@pytest.fixture(scope="module")
def iglu_report(tmp_path_factory) -> tuple[ReportFiles, dict]:
    readings = metrics_cli.read_readings(IGLU_CSV)
    time_ns, gl = readings.subject(0)
    files = render_report(str(readings.ids[0]), time_ns, gl, tmp_path_factory.mktemp("iglu"),
                          attributes={"age_group": "adult", "sensor_model": "Dexcom G4", "therapy": "MDI"})
    expected = {name: values[0].item() for name, values in glucose_metrics(readings).items()}
    return files, expected


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory) -> ReportFiles:
    time_ns, gl = _synthetic_days()
    return render_report(ODD_ID, time_ns, gl, tmp_path_factory.mktemp("out") / "new" / "dir")


def test_iglu_report_files_and_self_contained_html(iglu_report):
    files, _ = iglu_report
    assert files.html.name == "report-Subject_1.html" and files.pdf.name == "report-Subject_1.pdf"
    page = files.html.read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == 3
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "<script" not in page and "<link" not in page and "@import" not in page


def test_iglu_report_numbers_match_glucose_metrics(iglu_report):
    files, expected = iglu_report
    assert files.metrics["mean"] == pytest.approx(expected["mean"])
    tables = _tables(files.html.read_text(encoding="utf-8"))
    assert tables["Glucose statistics"]["Mean glucose"] == [f"{expected['mean']:.0f} mg/dL"]
    assert tables["Glucose statistics"]["Coefficient of variation (CV)"] == [f"{expected['cv']:.1f} %"]
    assert tables["Patient"]["Patient"] == ["Subject 1"]
    assert tables["Patient"]["Sensor model"] == ["Dexcom G4"]
    assert tables["Patient"]["Report period"] == ["2015-06-06 to 2015-06-19"]
    assert tables["Patient"]["Time CGM active"] == [f"{expected['active_percent']:.1f} %"]
    # Under 13 days of data: the consensus sufficiency (14 days, >= 70 % active) is flagged.
    assert "Data sufficiency NOT met" in files.html.read_text(encoding="utf-8")
    has_episodes = "episodes_hypo_l1" in expected
    assert ("Episodes" in tables) == has_episodes


def test_iglu_report_pdf_has_two_pages(iglu_report):
    pdf = iglu_report[0].pdf
    assert pdf.read_bytes().startswith(b"%PDF")
    assert _pdf_pages(pdf) == 2


def test_targets_marked_met_or_not(synthetic_report):
    tables = _tables(synthetic_report.html.read_text(encoding="utf-8"))
    cv = synthetic_report.metrics["cv"]
    assert tables["Consensus targets"] == {
        "Measure": ["Value", "Target", "Status"],
        "Time 70-180 mg/dL": ["75.0 %", "> 70 %", "Met"],
        "Time <70 mg/dL": ["4.9 %", "< 4 %", "Not met"],
        "Time <54 mg/dL": ["0.0 %", "< 1 %", "Met"],
        "Time >180 mg/dL": ["20.1 %", "< 25 %", "Met"],
        "Time >250 mg/dL": ["0.0 %", "< 5 %", "Met"],
        "Coefficient of variation": [f"{cv:.1f} %", "≤ 36 %", "Met" if cv <= 36 else "Not met"],
    }


def test_sufficient_data_and_escaped_patient_id(synthetic_report):
    assert synthetic_report.html.parent.name == "dir"  # out_dir created
    assert synthetic_report.html.name == "report-pt_7.html"
    page = synthetic_report.html.read_text(encoding="utf-8")
    assert "pt &lt;&amp;&gt; &quot;7&quot;" in page and "<&>" not in page
    assert "Data sufficiency met: 14.0 days, 100.0 % CGM active" in page
    assert _tables(page)["Patient"]["Readings"] == ["4,032"]
    assert _pdf_pages(synthetic_report.pdf) == 2


def test_target_boundaries():
    by_column = {target.column: target for target in CONSENSUS_TARGETS}
    assert not by_column["in_range_70_180"].met(70.0)
    assert by_column["in_range_70_180"].met(70.1)
    assert not by_column["below_70"].met(4.0)
    assert by_column["cv"].met(36.0)


@pytest.mark.parametrize("time_min, gl", [([], []), ([0.0], [100.0]), ([0.0, 5.0], [100.0, np.nan]),
                                          ([0.0, 0.0], [100.0, 110.0])])
def test_too_few_readings(tmp_path, time_min, gl):
    time_ns = T0_NS + (np.asarray(time_min) * NS_PER_MIN).astype(np.int64)
    with pytest.raises(ConfigError, match="no readings in the window") as raised:
        render_report("p1", time_ns, np.asarray(gl, dtype=float), tmp_path)
    assert raised.value.field == "patient 'p1'"
    assert not list(tmp_path.iterdir())


def test_metrics_are_glucose_metrics_of_the_patient(synthetic_report):
    time_ns, gl = _synthetic_days()
    readings = group_readings(np.zeros(len(gl), dtype=np.int64), time_ns, gl)
    expected = {name: values[0].item() for name, values in glucose_metrics(readings).items()}
    assert synthetic_report.metrics.keys() == expected.keys()
    for name, value in expected.items():
        got = synthetic_report.metrics[name]
        assert got == value if isinstance(value, str) else got == pytest.approx(value, nan_ok=True), name


# -- insulin and carbohydrate --------------------------------------------------------------------
NS_PER_HOUR = 60 * NS_PER_MIN


def _pump_treatments(days: int = 14, schedule: BasalSchedule | None = None) -> Treatments:
    """Each day 4 U at 08:00 with 50 g and 6 U at 19:00 with 70 g; on the third day a
    0 U/h temporary basal from 10:00 for 2 h."""
    at = np.array([T0_NS + d * NS_PER_DAY + h * NS_PER_HOUR for d in range(days) for h in (8, 19)])
    temps = TempBasals(np.array([(T0_NS + 2 * NS_PER_DAY + 10 * NS_PER_HOUR) // 1_000_000]),
                       np.array([120.0]), np.array([0.0]), np.array([np.nan]))
    return Treatments(at, np.tile([50.0, 70.0], days), np.tile([4.0, 6.0], days),
                      basal=Basal(schedule, temps, "Default" if schedule is not None else None))


def _insulin_table(files: ReportFiles) -> dict[str, list[str]]:
    return _tables(files.html.read_text(encoding="utf-8"))["Insulin and carbohydrate"]


def test_insulin_and_carbohydrate_daily_totals(tmp_path):
    """A flat 1 U/h schedule, 24 U a day, less the 2 U the temp basal withheld: basal
    (14 x 24 - 2) / 14 = 23.857 U/day; boluses 10 U/day; TDD 33.857; bolus 29.5 %; 120 g/day."""
    time_ns, gl = _synthetic_days()
    flat = BasalSchedule(np.array([0]), np.array([1.0]))
    files = render_report("p1", time_ns, gl, tmp_path, treatments=_pump_treatments(schedule=flat))
    assert _insulin_table(files) == {
        "Days with records": ["14 (2024-03-01 to 2024-03-14, UTC days)"],
        "Total daily dose (TDD)": ["33.9 U/day"], "Basal": ["23.9 U/day"], "Bolus": ["10.0 U/day"],
        "Bolus / basal": ["30 % / 70 %"], "Basal schedule": ["profile Default (UTC)"],
        "Temporary basal rates": ["1"], "Carbohydrate": ["120 g/day"]}
    insulin = files.insulin
    assert insulin.days == 14 and insulin.basal_u[2] == pytest.approx(22.0)
    np.testing.assert_allclose(np.delete(insulin.basal_u, 2), 24.0)
    np.testing.assert_allclose(insulin.bolus_u, 10.0)
    np.testing.assert_allclose(insulin.carbs_g, 120.0)
    assert _tables(files.html.read_text(encoding="utf-8"))["Patient"]["Boluses"] == ["28 (2.0 a day)"]
    assert "Hypo treatments" not in _tables(files.html.read_text(encoding="utf-8"))["Patient"]
    assert _pdf_pages(files.pdf) == 2


def test_without_a_basal_schedule_only_boluses_and_carbs_are_totalled(tmp_path):
    time_ns, gl = _synthetic_days()
    files = render_report("p1", time_ns, gl, tmp_path, treatments=_pump_treatments())
    table = _insulin_table(files)
    assert table["Total daily dose (TDD)"] == ["n/a (basal no profile with a basal schedule)"]
    assert table["Basal"] == ["n/a (no profile with a basal schedule)"]
    assert table["Bolus"] == ["10.0 U/day"] and table["Carbohydrate"] == ["120 g/day"]
    assert np.isnan(files.insulin.basal_u).all()


def test_records_count_only_the_days_they_cover(tmp_path):
    """Treatments on the last 4 of 14 days of readings: means over those 4 days, not 14."""
    time_ns, gl = _synthetic_days()
    late = _pump_treatments(days=4)
    shifted = Treatments(late.time_ns + 10 * NS_PER_DAY, late.carbs_g, late.insulin_u)
    files = render_report("p1", time_ns, gl, tmp_path, treatments=shifted)
    table = _insulin_table(files)
    assert table["Days with records"] == ["4 (2024-03-11 to 2024-03-14, UTC days)"]
    assert table["Bolus"] == ["10.0 U/day"] and table["Basal"] == ["n/a (not recorded)"]


def test_no_treatments_in_the_period_is_said_not_zeroed(tmp_path, synthetic_report):
    assert _insulin_table(synthetic_report) == {"Treatments": ["none recorded for this patient"]}
    assert synthetic_report.insulin is None
    time_ns, gl = _synthetic_days()
    treatments = _pump_treatments(days=1)
    later = Treatments(treatments.time_ns + 30 * NS_PER_DAY, treatments.carbs_g, treatments.insulin_u)
    files = render_report("p1", time_ns, gl, tmp_path, treatments=later)
    assert _insulin_table(files) == {"Treatments": ["none recorded in the report period"]}
    assert files.insulin is None
    assert not re.search(r"\d U/day|g/day", files.html.read_text(encoding="utf-8"))


def test_a_simulations_treatments_total_boluses_but_not_meals(tmp_path):
    """cgm-ray simulate records hypo rescues and boluses, not meals or basal."""
    time_ns, gl = _synthetic_days()
    at = T0_NS + np.array([8, 20, 30]) * NS_PER_HOUR
    simulated = Treatments(at, np.array([np.nan, 15.0, np.nan]), np.array([3.0, np.nan, 5.0]),
                           hypo=np.array([False, True, False]), meals_recorded=False)
    files = render_report("p1", time_ns, gl, tmp_path, treatments=simulated)
    table = _insulin_table(files)
    assert table["Days with records"] == ["2 (2024-03-01 to 2024-03-02, UTC days)"]
    assert table["Bolus"] == ["4.0 U/day"] and table["Carbohydrate"] == ["n/a (meals not recorded)"]
    assert table["Basal"] == ["n/a (not recorded)"]
    patient = _tables(files.html.read_text(encoding="utf-8"))["Patient"]
    assert patient["Hypo treatments"] == ["1 (0.1 a day, 15 g in all)"]
