"""The doctor's report: self-contained HTML, 2-page PDF, numbers and target marks as computed."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from cgm_ray.cli import metrics as metrics_cli
from cgm_ray.errors import ConfigError
from cgm_ray.glucose.grid import NS_PER_MIN, group_readings
from cgm_ray.glucose.metrics import glucose_metrics
from cgm_ray.glucose.targets import CONSENSUS_TARGETS
from cgm_ray.lake.report import ReportFiles, render_report
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
