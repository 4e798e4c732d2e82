"""The doctor's report: one patient's ambulatory glucose profile, as HTML and as PDF.

The layout follows the AGP Report v5 and the International Consensus on Time in Range
(Battelino et al., Diabetes Care 2019): header and data sufficiency, glucose statistics against
the consensus targets, insulin and carbohydrate per day where treatments are known, the AGP
(percentiles by time of day) and daily profiles. The tables are built once (``_tables``) and
written to both formats, so HTML and PDF show the same numbers. Everything is computed in
mg/dL; a report in mmol/L converts at the last step (the glucose-valued statistics, the range
labels, the axes), so both units show the same report.
Figures use ``matplotlib.figure.Figure`` directly (Agg canvas, no pyplot state): thread-safe.
Definitions: ``../shared/docs/cgm-domain.md`` section 3.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from cgm_ray.errors import ConfigError
from cgm_ray.glucose.episodes import EXTENDED_HYPO_MIN
from cgm_ray.glucose.grid import INTER_GAP_MIN, NS_PER_DAY, NS_PER_MIN, day_grid, group_readings
from cgm_ray.glucose.insulin_totals import MS_PER_DAY, DailyTotals
from cgm_ray.glucose.metrics import agp_percentiles, glucose_metrics, metrics_in_units, range_text
from cgm_ray.glucose.targets import CONSENSUS_TARGETS, MIN_ACTIVE_PERCENT, MIN_DAYS, data_sufficient
from cgm_ray.glucose.units import GLUCOSE_DECIMALS, UNITS_LABEL, GlucoseUnits, from_mgdl, glucose_text
from cgm_ray.lake.treatments import Basal, Treatments, daily_insulin


@dataclass(frozen=True)
class Band:
    """A glucose range of the time-in-ranges bar, with its AGP v5 colour: from ``low_mgdl`` to
    ``high_mgdl`` (None: open). An exclusive bound of a closed range is labelled one printed
    step inside, as the AGP report does: above 180 up to 250 reads "181-250 mg/dL" or
    "10.1-13.9 mmol/L"."""

    label: str
    low_mgdl: float | None
    high_mgdl: float | None
    color: str
    low_exclusive: bool = False
    high_exclusive: bool = False

    def text(self, units: GlucoseUnits) -> str:
        """The range with its unit, e.g. ">250 mg/dL", "3.0-3.8 mmol/L"."""
        low = None if self.low_mgdl is None else glucose_text(self.low_mgdl, units, int(self.low_exclusive))
        high = (None if self.high_mgdl is None
                else glucose_text(self.high_mgdl, units, -int(self.high_exclusive)))
        bound = f"<{high}" if low is None else f">{low}" if high is None else f"{low}-{high}"
        return f"{bound} {UNITS_LABEL[units]}"


# The report's ranges and layout (the targets themselves are in cgm_ray.glucose.targets).
TARGET_RANGE_MGDL = (70.0, 180.0)
BANDS = (Band("Very high", 250, None, "#E8743B"),
         Band("High", 180, 250, "#F2C12E", low_exclusive=True),
         Band("Target", 70, 180, "#3BA55C"),
         Band("Low", 54, 70, "#E5383B", high_exclusive=True),
         Band("Very low", None, 54, "#8E1B1B"))
# Episode type -> (title, the time-in-ranges column whose range defines it).
EPISODES = (("hypo_l1", "Level 1 hypoglycaemia", "below_70"),
            ("hypo_l2", "Level 2 hypoglycaemia", "below_54"),
            ("hypo_ext", "Extended hypoglycaemia", "below_70"),
            ("hyper_l1", "Level 1 hyperglycaemia", "above_180"),
            ("hyper_l2", "Level 2 hyperglycaemia", "above_250"))
AGP_YTICKS_MGDL, DAILY_YTICKS_MGDL, Y_MIN_TOP_MGDL = (0, 54, 70, 180, 250, 350), (54, 70, 180, 250), 350.0
MARK_INSET_MGDL = 12.0  # treatment marks: this far inside the bottom and the top of a daily panel
DAILY_PANELS, DAILY_COLUMNS = 14, 7
A4_PORTRAIT_IN, A4_LANDSCAPE_IN = (8.27, 11.69), (11.69, 8.27)
PNG_DPI, TABLE_ROW_IN, TABLE_TITLE_IN, TITLE_IN = 110, 0.19, 0.42, 0.32
TIR_MIN_IN, AGP_MIN_IN = 2.0, 2.4  # page 1: the time-in-ranges bar and the AGP, at least
RESCUE_COLOR, CARBS_COLOR, BOLUS_COLOR = BANDS[3].color, "#B8860B", "#2166AC"


@dataclass(frozen=True)
class ReportFiles:
    """The written report: HTML and PDF paths, the metrics shown (one value per name; the
    glucose-valued ones in ``glucose_units``), the insulin and carbohydrate totals (None when
    no treatment is known in the period) and the glucose units shown ("mg/dL" or "mmol/L")."""

    html: Path
    pdf: Path
    metrics: dict
    insulin: DailyTotals | None = None
    glucose_units: str = "mg/dL"


@dataclass(frozen=True)
class _Table:
    title: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]

    @property
    def height_in(self) -> float:
        """Its height on the PDF page: title, header and rows."""
        return TABLE_TITLE_IN + TABLE_ROW_IN * (len(self.rows) + any(self.header))


@dataclass(frozen=True)
class _PageTables:
    """The report's tables, as both formats place them."""

    patient: _Table
    statistics: _Table
    targets: _Table
    insulin: _Table
    episodes: _Table | None


def render_report(patient_id: str, time_ns: np.ndarray, glucose_mgdl: np.ndarray,
                  out_dir: str | Path, attributes: Mapping[str, object] | None = None,
                  title: str = "Ambulatory glucose profile",
                  treatments: Treatments | None = None, units: GlucoseUnits = "mg/dl") -> ReportFiles:
    """Write ``report-<id>.html`` (self-contained, embedded PNGs) and ``report-<id>.pdf`` (2 pages).

    ``time_ns``: UTC wall-clock ns since epoch, ``glucose_mgdl``: mg/dL (non-finite dropped).
    ``treatments``: what the patient did, if known (``cgm_ray.lake.treatments``); without any
    in the report's days the report says so. ``units``: what the report shows glucose in
    (statistics, range labels, axes); the maths stays in mg/dL. ConfigError when the lengths
    differ or fewer than 2 distinct reading times remain.
    """
    if len(time_ns) != len(glucose_mgdl):
        raise ConfigError("time_ns", f"{len(time_ns)} times for {len(glucose_mgdl)} glucose values")
    readings = group_readings(np.zeros(len(glucose_mgdl), dtype=np.int64), time_ns, glucose_mgdl)
    t, g = readings.time_ns, readings.gl_mgdl  # the one patient's readings, sorted, finite
    if len(t) < 2 or t[0] == t[-1]:
        raise ConfigError(f"patient {patient_id!r}", "patient has no readings in the window")
    metrics = {name: np.asarray(v)[0].item() for name, v in glucose_metrics(readings).items()}
    shown = metrics_in_units(metrics, units)
    insulin = daily_insulin(treatments, int(t[0]), int(t[-1])) if treatments is not None else None
    tables, sufficiency, sufficient = _tables(patient_id, t, g, shown, attributes or {},
                                              treatments, insulin, units)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = "report-" + (re.sub(r"[^A-Za-z0-9._-]+", "_", patient_id).strip("._-") or "patient")

    tir, agp = Figure(figsize=(4.2, 3.0)), Figure(figsize=(9.0, 3.6))
    _draw_tir(tir.add_subplot(), metrics, units)
    _draw_agp(agp.add_subplot(), t, g, units)
    page1 = _page_one(title, patient_id, tables, sufficiency, sufficient, metrics, t, g, units)
    daily = _daily_figure(t, g, patient_id, treatments, insulin, units)
    pdf_path = out / f"{stem}.pdf"
    with PdfPages(pdf_path, metadata={"Title": f"{title}: {patient_id}"}) as pdf:
        pdf.savefig(page1)
        pdf.savefig(daily)
    html_path = out / f"{stem}.html"
    html_path.write_text(_html(title, patient_id, tables, sufficiency, sufficient,
                               [_png(tir), _png(agp), _png(daily)], units), encoding="utf-8")
    return ReportFiles(html_path, pdf_path, shown, insulin, UNITS_LABEL[units])


def _fmt(value: object, spec: str, unit: str = "") -> str:
    """``value`` formatted with ``spec`` and ``unit``; "n/a" for NaN (MAGE of a short record)."""
    v = float(value)
    return "n/a" if not np.isfinite(v) else f"{v:{spec}}{unit}"


def _date(ns: int) -> str:
    return str(np.datetime64(int(ns), "ns").astype("datetime64[D]"))


# Attribute name suffix -> (unit shown, decimals): values are rounded to what a clinician
# reads (a weight to 0.1 kg, a carb ratio to 1 g/U), never printed with float noise.
UNIT_SUFFIXES = (("_mgdl_per_u", "mg/dL per U", 0), ("_g_per_u", "g/U", 0),
                 ("_u_per_h", "U/h", 2), ("_u_per_day", "U/day", 1), ("_kg", "kg", 1),
                 ("_years", "years", 0), ("_mgdl", "mg/dL", 0), ("_percent", "%", 1),
                 ("_pct", "%", 0), ("_per_week", "a week", 1), ("_min", "min", 0))


def _attribute_row(key: object, value: object, units: GlucoseUnits = "mg/dl") -> tuple[str, str]:
    """An attribute as a (label, text) row: ``weight_kg`` 25.3219 -> ("Weight", "25.3 kg");
    a glucose-valued one (``_mgdl``, ``_mgdl_per_u``) in ``units``."""
    name = str(key)
    unit, decimals = "", None
    for suffix, suffix_unit, suffix_decimals in UNIT_SUFFIXES:
        if name.endswith(suffix):
            name, unit, decimals = name[: -len(suffix)], suffix_unit, suffix_decimals
            break
    if unit.startswith("mg/dL") and isinstance(value, int | float) and not isinstance(value, bool):
        value = from_mgdl(float(value), units)
        unit, decimals = unit.replace("mg/dL", UNITS_LABEL[units]), GLUCOSE_DECIMALS[units]
    if isinstance(value, float) and not isinstance(value, bool):
        text = "n/a" if not np.isfinite(value) else (
            f"{value:,.{decimals}f}" if decimals is not None else f"{value:.3g}")
    else:
        text = str(value)
    return _label(name), f"{text} {unit}".strip() if text != "n/a" else text


def _label(key: object) -> str:
    """An attribute key as a row label: ``sensor_model`` -> "Sensor model" (HbA1c kept)."""
    text = str(key).replace("_", " ")
    return text[:1].upper() + text[1:]


def _tables(patient_id: str, t: np.ndarray, g: np.ndarray, m: dict, attributes: Mapping[str, object],
            treatments: Treatments | None = None, insulin: DailyTotals | None = None,
            units: GlucoseUnits = "mg/dl") -> tuple[_PageTables, str, bool]:
    """The tables (patient, statistics, targets, insulin, episodes if present) and the
    sufficiency note; ``m`` holds the metrics as shown, glucose-valued ones in ``units``.

    Days of wear count one sampling interval after the last reading, so 14 days of readings every
    5 min from 00:00 to 23:55 are 14.0 days.
    """
    step_ns = np.median(np.diff(t))
    days = (t[-1] - t[0] + step_ns) / NS_PER_DAY
    active = m["active_percent"]
    sufficient = bool(data_sufficient(days + 1e-9, active))
    sufficiency = (f"Data sufficiency {'met' if sufficient else 'NOT met'}: {days:.1f} days, "
                   f"{active:.1f} % CGM active (consensus: {MIN_DAYS} days "
                   f"with ≥ {MIN_ACTIVE_PERCENT:.0f} % of possible readings).")
    patient = [("Patient", patient_id),
               *(_attribute_row(k, v, units) for k, v in attributes.items()),
               ("Report period", f"{_date(t[0])} to {_date(t[-1])}"),
               ("Days of wear", f"{days:.1f}"), ("Time CGM active", _fmt(active, ".1f", " %")),
               ("Readings", f"{len(g):,}")]
    if treatments is not None:
        shown = (treatments.time_ns >= t[0] // NS_PER_DAY * NS_PER_DAY) & (
            treatments.time_ns < (t[-1] // NS_PER_DAY + 1) * NS_PER_DAY)
        rescue, bolus = treatments.rescue & shown, treatments.bolus & shown
        if treatments.hypo is not None:
            patient.append(("Hypo treatments", f"{rescue.sum():,} ({rescue.sum() / days:.1f} a day, "
                                               f"{treatments.carbs_g[rescue].sum():,.0f} g in all)"))
        patient.append(("Boluses", f"{bolus.sum():,} ({bolus.sum() / days:.1f} a day)"))
    glucose_spec, glucose_unit = f".{GLUCOSE_DECIMALS[units]}f", f" {UNITS_LABEL[units]}"
    stats = [("Mean glucose", _fmt(m["mean"], glucose_spec, glucose_unit)),
             ("Glucose management indicator (GMI)", _fmt(m["gmi"], ".1f", " %")),
             ("Standard deviation (SD)", _fmt(m["sd"], glucose_spec, glucose_unit)),
             ("Coefficient of variation (CV)", _fmt(m["cv"], ".1f", " %")),
             ("Glycemia risk index (GRI)", f"{_fmt(m['gri'], '.1f')} (zone {m['gri_zone']})"),
             ("Low / high blood glucose index",
              f"{_fmt(m['lbgi'], '.1f')} / {_fmt(m['hbgi'], '.1f')}"),
             ("MAGE", _fmt(m["mage"], glucose_spec, glucose_unit))]
    targets = [(tg.label_in(units), _fmt(m[tg.column], ".1f", " %"), tg.text,
                "Met" if tg.met(m[tg.column]) else "Not met") for tg in CONSENSUS_TARGETS]
    episodes = [(_episode_label(key, title, column, units), _fmt(m[f"episodes_{key}"], ".0f"),
                 _fmt(m.get(f"episodes_{key}_per_day", np.nan), ".1f"),
                 _fmt(m.get(f"episodes_{key}_duration_min", np.nan), ".0f"))
                for key, title, column in EPISODES if f"episodes_{key}" in m]
    header = ("Episode", "Count", "Per day", "Mean duration (min)")
    tables = _PageTables(
        _Table("Patient", ("", ""), patient), _Table("Glucose statistics", ("", ""), stats),
        _Table("Consensus targets", ("Measure", "Value", "Target", "Status"), targets),
        _Table("Insulin and carbohydrate", ("", ""), _insulin_rows(treatments, insulin)),
        _Table("Episodes", header, episodes) if episodes else None)
    return tables, sufficiency, sufficient


def _episode_label(key: str, title: str, column: str, units: GlucoseUnits) -> str:
    """An episode type as the report names it: "Level 1 hypoglycaemia (<70 mg/dL)"."""
    qualifier = f">{EXTENDED_HYPO_MIN:.0f} min " if key == "hypo_ext" else ""
    return f"{title} ({qualifier}{range_text(column, units)})"


def _insulin_rows(treatments: Treatments | None, insulin: DailyTotals | None
                  ) -> list[tuple[str, str]]:
    """Daily totals of insulin and carbohydrate, as far as the treatments record them; a
    single row saying so when there are none (no zeros standing in for missing records)."""
    if treatments is None:
        return [("Treatments", "none recorded for this patient")]
    if insulin is None:
        return [("Treatments", "none recorded in the report period")]
    first, last = (_date(ms * 1_000_000) for ms in insulin.day_start_ms[[0, -1]])
    rows = [("Days with records", f"{insulin.days} ({first} to {last}, UTC days)")]
    basal = treatments.basal
    bolus_u = insulin.per_day(insulin.bolus_u)
    if basal is not None and basal.schedule is not None:
        split = insulin.bolus_percent
        rows += [("Total daily dose (TDD)", f"{insulin.per_day(insulin.total_u):.1f} U/day"),
                 ("Basal", f"{insulin.per_day(insulin.basal_u):.1f} U/day"),
                 ("Bolus", f"{bolus_u:.1f} U/day"),
                 ("Bolus / basal", f"{_fmt(split, '.0f', ' %')} / {_fmt(100 - split, '.0f', ' %')}"),
                 ("Basal schedule", f"profile {basal.profile} ({basal.schedule.timezone})"),
                 ("Temporary basal rates", f"{_temp_count(basal, insulin):,}")]
    else:
        why = "not recorded" if basal is None else "no profile with a basal schedule"
        rows += [("Total daily dose (TDD)", f"n/a (basal {why})"), ("Basal", f"n/a ({why})"),
                 ("Bolus", f"{bolus_u:.1f} U/day")]
    carbs = (f"{insulin.per_day(insulin.carbs_g):.0f} g/day" if treatments.meals_recorded
             else "n/a (meals not recorded)")
    return [*rows, ("Carbohydrate", carbs)]


def _temp_count(basal: Basal, insulin: DailyTotals) -> int:
    """Temporary basal rates that ran, started within the days of ``insulin``."""
    start = basal.temps.runs()[0]
    return int(np.sum((start >= insulin.day_start_ms[0])
                      & (start < insulin.day_start_ms[-1] + MS_PER_DAY)))


def _draw_tir(ax: Axes, m: dict, units: GlucoseUnits = "mg/dl") -> None:
    """Time in ranges as one stacked bar (very low at the bottom), labels (in ``units``) in the
    same order."""
    percents = [m["above_250"], m["above_180"] - m["above_250"], m["in_range_70_180"],
                m["below_70"] - m["below_54"], m["below_54"]]
    tops = 100.0 - np.cumsum([0.0, *percents[:-1]])
    for i, (band, pct, top) in enumerate(zip(BANDS, percents, tops)):
        ax.bar(0.12, pct, width=0.18, bottom=top - pct, color=band.color, edgecolor="white")
        y = 0.9 - 0.2 * i
        ax.plot(0.3, y, "s", color=band.color, transform=ax.transAxes, clip_on=False)
        ax.text(0.34, y, f"{band.label} ({band.text(units)}): {pct:.1f} %", va="center",
                fontsize=8, transform=ax.transAxes)
    ax.set(xlim=(0, 1), ylim=(0, 100), title="Time in ranges")
    ax.axis("off")


def _draw_agp(ax: Axes, t: np.ndarray, g: np.ndarray, units: GlucoseUnits = "mg/dl") -> None:
    """The AGP: median, 25-75 and 5-95 percentile bands by time of day, over the target range;
    glucose in ``units``."""
    minute, pct_mgdl = agp_percentiles(day_grid(t, g))
    pct, hours = from_mgdl(pct_mgdl, units), minute / 60.0
    _target_band(ax, units)
    ax.fill_between(hours, pct[:, 0], pct[:, 4], color="#C6DBEF", label="5-95 %", lw=0)
    ax.fill_between(hours, pct[:, 1], pct[:, 3], color="#6BAED6", label="25-75 %", lw=0)
    ax.plot(hours, pct[:, 2], color="#08306B", lw=1.6, label="Median")
    ax.set(xlim=(0, 24), ylim=(0, from_mgdl(max(Y_MIN_TOP_MGDL, np.nanmax(pct_mgdl) + 10), units)),
           ylabel=f"Glucose ({UNITS_LABEL[units]})",
           xticks=range(0, 25, 3), xticklabels=[f"{h:02d}:00" for h in range(0, 25, 3)],
           title=f"Ambulatory glucose profile ({_days(t[-1] // NS_PER_DAY - t[0] // NS_PER_DAY + 1)}"
                 " pooled)")
    _glucose_ticks(ax, AGP_YTICKS_MGDL, units)
    ax.legend(loc="upper left", fontsize=8, ncols=3, frameon=False)


def _glucose_ticks(ax: Axes, ticks_mgdl: tuple[float, ...], units: GlucoseUnits) -> None:
    """Y ticks at glucose thresholds, labelled as printed in ``units`` (70 -> "3.9")."""
    ax.set_yticks([from_mgdl(float(y), units) for y in ticks_mgdl],
                  [glucose_text(y, units) for y in ticks_mgdl])


def _target_band(ax: Axes, units: GlucoseUnits = "mg/dl") -> None:
    lo, hi = (from_mgdl(y, units) for y in TARGET_RANGE_MGDL)
    ax.axhspan(lo, hi, color="#3BA55C", alpha=0.12, lw=0)
    for y in (lo, hi):
        ax.axhline(y, color="#3BA55C", lw=0.8)


def _daily_figure(t: np.ndarray, g: np.ndarray, patient_id: str,
                  treatments: Treatments | None = None, insulin: DailyTotals | None = None,
                  units: GlucoseUnits = "mg/dl") -> Figure:
    """The last 14 calendar days in full-width rows of 7, one panel per day, readings joined
    except across gaps > 45 min; days without readings keep their (empty) panel, so every
    row spans the page whatever the record's length. Known treatments are marked (hypo
    rescues and other carbohydrate as triangles at the bottom, boluses at the top) and each
    day's insulin and carbohydrate totals written in its panel. Glucose in ``units``."""
    days = np.arange(t[0] // NS_PER_DAY, t[-1] // NS_PER_DAY + 1)[-DAILY_PANELS:]
    rows = -(-len(days) // DAILY_COLUMNS)
    width, height = A4_LANDSCAPE_IN
    fig = Figure(figsize=(width, 1.0 + (height - 1.0) * rows / (DAILY_PANELS // DAILY_COLUMNS)))
    fig.suptitle(f"Daily glucose profiles: patient {patient_id}", x=0.06, ha="left", fontsize=13,
                 parse_math=False)
    if treatments is not None:
        _marks_legend(fig, treatments)
    axes = fig.subplots(rows, DAILY_COLUMNS, sharey=True, squeeze=False,
                        gridspec_kw={"wspace": 0.08, "hspace": 0.3})
    ymax = from_mgdl(max(Y_MIN_TOP_MGDL, float(g.max()) + 10), units)
    lo, hi = (from_mgdl(y, units) for y in TARGET_RANGE_MGDL)
    shown = from_mgdl(g, units)
    for k, ax in enumerate(axes.ravel()):
        day = days[0] + k
        keep = (t // NS_PER_DAY) == day
        hours = (t[keep] - day * NS_PER_DAY) / (60 * NS_PER_MIN)
        gl = shown[keep]
        gap = np.flatnonzero(np.diff(hours) * 60 > INTER_GAP_MIN) + 1
        hours, gl = np.insert(hours, gap, np.nan), np.insert(gl, gap, np.nan)
        _target_band(ax, units)
        ax.fill_between(hours, gl, hi, where=gl > hi, interpolate=True, color=BANDS[1].color, lw=0)
        ax.fill_between(hours, gl, lo, where=gl < lo, interpolate=True, color=BANDS[3].color, lw=0)
        ax.plot(hours, gl, color="#333333", lw=0.8)
        if treatments is not None:
            _mark_treatments(ax, treatments, int(day), ymax, from_mgdl(MARK_INSET_MGDL, units))
        note = _day_totals(insulin, treatments, int(day))
        if note:
            ax.text(0.5, 0.935, note, transform=ax.transAxes, ha="center", va="top",
                    fontsize=6.5, color="#333333", parse_math=False)
        label = np.datetime64(int(day), "D").item().strftime("%a %d %b")
        ax.set_title(label, fontsize=9, color="#333333" if keep.any() else "#999999")
        ax.set(xlim=(0, 24), ylim=(0, ymax), xticks=[0, 6, 12, 18, 24])
        ax.set_xticklabels(["", "06", "12", "18", ""])
        _glucose_ticks(ax, DAILY_YTICKS_MGDL, units)
        ax.tick_params(labelsize=7)
    return fig


def _marks(treatments: Treatments) -> list[tuple[np.ndarray, str, str, str]]:
    """The kinds of treatment marked: (which, marker, colour, legend), those recorded only."""
    rescue = treatments.rescue
    marks = ([(rescue, "^", RESCUE_COLOR, "hypo treatment (fast carbs)")]
             if treatments.hypo is not None else [])
    if treatments.meals_recorded:
        marks.append((treatments.carbs & ~rescue, "^", CARBS_COLOR, "carbohydrate"))
    return [*marks, (treatments.bolus, "v", BOLUS_COLOR, "bolus")]


def _marks_legend(fig: Figure, treatments: Treatments) -> None:
    for k, (_, marker, color, label) in enumerate(reversed(_marks(treatments))):
        symbol = "\u25b2" if marker == "^" else "\u25bc"
        fig.text(0.94 - 0.16 * k, 0.975, f"{symbol} {label}", ha="right", va="top", fontsize=8,
                 color=color)


def _mark_treatments(ax: Axes, treatments: Treatments, day: int, ymax: float, inset: float) -> None:
    """One day's treatments: carbohydrate at the bottom, boluses at the top of the panel, each
    ``inset`` (in the panel's glucose units) inside it."""
    today = (treatments.time_ns // NS_PER_DAY) == day
    at = (treatments.time_ns - day * NS_PER_DAY) / (60 * NS_PER_MIN)
    for which, marker, color, _ in _marks(treatments):
        shown = today & which
        ax.plot(at[shown], np.full(shown.sum(), inset if marker == "^" else ymax - inset), marker,
                color=color, ms=4)


def _day_totals(insulin: DailyTotals | None, treatments: Treatments | None, day: int) -> str:
    """A day's insulin (the total dose, or boluses when basal is unknown) and carbohydrate,
    for the days the totals cover; empty for the others."""
    if insulin is None or treatments is None:
        return ""
    k = np.flatnonzero(insulin.day_start_ms == day * MS_PER_DAY)
    if not len(k):
        return ""
    total = insulin.total_u[k[0]]
    text = f"{total:.1f} U" if np.isfinite(total) else f"bolus {insulin.bolus_u[k[0]]:.1f} U"
    return text + (f", {insulin.carbs_g[k[0]]:.0f} g" if treatments.meals_recorded else "")


def _page_one(title: str, patient_id: str, tables: _PageTables, sufficiency: str,
              sufficient: bool, m: dict, t: np.ndarray, g: np.ndarray,
              units: GlucoseUnits = "mg/dl") -> Figure:
    """PDF page 1: header, sufficiency note, tables, time-in-ranges bar and the AGP.

    Left column: patient, then consensus targets; right column: glucose statistics and
    insulin, then the time-in-ranges bar; episodes across the page, the AGP below. Each
    band is as tall as its longer column (tables have fixed row heights) and the AGP takes
    what is left."""
    fig = Figure(figsize=A4_PORTRAIT_IN)
    fig.text(0.06, 0.965, title, fontsize=15, weight="bold", parse_math=False)
    fig.text(0.06, 0.945, f"Patient {patient_id}", fontsize=10, parse_math=False)
    fig.text(0.06, 0.925, sufficiency, fontsize=8, color="black" if sufficient else "#C00000",
             weight="normal" if sufficient else "bold", parse_math=False)
    top, bottom = 0.9, 0.04
    upper = (tables.patient.height_in, tables.statistics.height_in + tables.insulin.height_in)
    middle = max(tables.targets.height_in, TIR_MIN_IN)
    bands = [max(upper), middle] + ([tables.episodes.height_in] if tables.episodes else [])
    agp = max(AGP_MIN_IN, (top - bottom) * A4_PORTRAIT_IN[1] - sum(bands))
    grid = fig.add_gridspec(len(bands) + 1, 2, top=top, bottom=bottom, left=0.07, right=0.96,
                            height_ratios=[*bands, agp], hspace=0.0, wspace=0.1)
    _draw_table(fig.add_subplot(grid[0, 0]), tables.patient)
    right = grid[0, 1].subgridspec(2, 1, height_ratios=[upper[1] - tables.insulin.height_in,
                                                        max(upper) - upper[1] + tables.insulin.height_in],
                                   hspace=0.0)
    _draw_table(fig.add_subplot(right[0]), tables.statistics)
    _draw_table(fig.add_subplot(right[1]), tables.insulin)
    _draw_table(fig.add_subplot(grid[1, 0]), tables.targets)
    tir = fig.add_subplot(grid[1, 1])
    _below_title(tir)
    _draw_tir(tir, m, units)
    if tables.episodes:
        _draw_table(fig.add_subplot(grid[2, :]), tables.episodes)
    agp_ax = fig.add_subplot(grid[-1, :])
    _below_title(agp_ax)
    _draw_agp(agp_ax, t, g, units)
    return fig


def _below_title(ax: Axes) -> None:
    """Lower the top of ``ax`` to leave room for its title inside its band of the page."""
    pos = ax.get_position()
    ax.set_position((pos.x0, pos.y0, pos.width, pos.height - TITLE_IN / ax.figure.get_figheight()))


def _draw_table(ax: Axes, table: _Table) -> None:
    """A text table at the top left of ``ax`` under its title, rows a fixed height on the page."""
    _below_title(ax)
    ax.axis("off")
    ax.set_title(table.title, loc="left", fontsize=10, weight="bold")
    header = table.header if any(table.header) else None
    tab = ax.table(cellText=[list(r) for r in table.rows], colLabels=header, loc="upper left",
                   cellLoc="left", colLoc="left", edges="horizontal")
    tab.auto_set_font_size(False)
    tab.set_fontsize(7.5)
    tab.auto_set_column_width(list(range(len(table.rows[0]))))
    for cell in tab.get_celld().values():
        cell.get_text().set_parse_math(False)
        cell.set_height(TABLE_ROW_IN / (ax.get_position().height * ax.figure.get_figheight()))


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


_CSS = """body{font-family:Helvetica,Arial,sans-serif;max-width:60em;margin:1.5em auto;color:#222}
h1{margin-bottom:0}h2{border-bottom:2px solid #3BA55C;padding-bottom:.2em;margin-top:1.4em}
table{border-collapse:collapse;margin:.5em 1.5em .8em 0;display:inline-table;vertical-align:top}
th,td{border-bottom:1px solid #ccc;padding:.25em .7em;text-align:left}caption{font-weight:bold;
text-align:left}.met{color:#1B7A3A;font-weight:bold}.notmet{color:#C00000;font-weight:bold}
.note{padding:.5em .8em;border-left:4px solid #3BA55C;background:#F1F8F3}
.warn{border-color:#C00000;background:#FDECEC}img{max-width:100%}
footer{font-size:.8em;color:#666}"""


def _html(title: str, patient_id: str, tables: _PageTables, sufficiency: str, sufficient: bool,
          pngs: list[str], units: GlucoseUnits = "mg/dl") -> str:
    """The self-contained HTML page: inline CSS, base64 PNGs, every text escaped."""
    e = html.escape

    def table_html(table: _Table) -> str:
        head = "".join(f"<th>{e(h)}</th>" for h in table.header)
        head = f"<tr>{head}</tr>" if any(table.header) else ""
        cls = {"Met": ' class="met"', "Not met": ' class="notmet"'}
        body = "".join("<tr>" + "".join(f"<td{cls.get(c, '')}>{e(c)}</td>" for c in row) + "</tr>"
                       for row in table.rows)
        return f"<table><caption>{e(table.title)}</caption>{head}{body}</table>"

    alts = ("Time in ranges", "Ambulatory glucose profile", "Daily profiles")
    img = [f'<img alt="{alt}" src="data:image/png;base64,{p}">' for alt, p in zip(alts, pngs)]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}: {e(patient_id)}</title>
<style>{_CSS}</style></head><body>
<h1>{e(title)}</h1><p>Patient <strong>{e(patient_id)}</strong></p>
{table_html(tables.patient)}<p class="note{'' if sufficient else ' warn'}">{e(sufficiency)}</p>
<h2>Glucose statistics and targets</h2>
{''.join(table_html(tb) for tb in (tables.statistics, tables.targets, tables.episodes) if tb)}
<div>{img[0]}</div>
<h2>Insulin and carbohydrate</h2>
{table_html(tables.insulin)}
<p>Daily means over the days with treatment records. Basal: the newest profile's schedule,
replaced by temporary basal rates while they run (as Nightscout shows it).</p>
<h2>Ambulatory glucose profile</h2>{img[1]}
<p>Median, 25-75 % and 5-95 % of glucose by time of day, all days pooled; green: target range
{e(range_text("in_range_70_180", units))}.</p>
<h2>Daily glucose profiles</h2>{img[2]}
<footer>Targets: International Consensus on Time in Range (Battelino et al., Diabetes Care 2019) for
adults with type 1 or type 2 diabetes; targets for older or high-risk patients are stricter. GMI:
Bergenstal 2018. GRI: Klonoff 2022. Times of day are the recorded wall-clock times.</footer>
</body></html>
"""


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"
