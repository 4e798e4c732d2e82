"""The deployment configs agree with each other and with the code (fast; no Ray is started).

- configs/kuberay-rayservice.yaml deploys exactly configs/serve.yaml's applications;
- configs/cluster.yaml is a valid `ray up` config whose node types all exist;
- configs/grafana-dashboard.json queries only metrics the code defines, with the names Ray
  2.60 exports (Counter ``cgm_x`` -> ``ray_cgm_x_total``; Histogram -> ``_bucket``/``_sum``/
  ``_count``; Gauge -> bare ``ray_cgm_x``), and every metric the code defines has a panel.
"""

from __future__ import annotations

import importlib.util
import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from cgm_ray.monitoring.prometheus_config import RECORDING_RULES

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

# What Ray 2.60 puts on the Prometheus export for each ray.util.metrics kind.
EXPORTED_SUFFIXES = {
    "Counter": ("_total",),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count"),
}

METRIC_DEF = re.compile(
    r"\b(Counter|Gauge|Histogram)\(\s*(?:name\s*=\s*)?[\"'](cgm_[A-Za-z0-9_]+)[\"']")
METRIC_REF = re.compile(r"\bray_(cgm_[A-Za-z0-9_]+)\b")
GRAFANA_BUILTINS = {"__rate_interval", "__range", "__interval", "__range_s", "__interval_ms"}


# ------------------------------------------------------------------------------ helpers
def load_yaml(name: str):
    return yaml.safe_load((CONFIGS / name).read_text())


def rayservice() -> dict:
    docs = [d for d in yaml.safe_load_all((CONFIGS / "kuberay-rayservice.yaml").read_text()) if d]
    services = [d for d in docs if d.get("kind") == "RayService"]
    assert len(services) == 1, "kuberay-rayservice.yaml must hold exactly one RayService"
    return services[0]


def serve_config_v2() -> dict:
    text = rayservice()["spec"]["serveConfigV2"]
    assert isinstance(text, str), "serveConfigV2 is a YAML string (a block scalar), not a mapping"
    return yaml.safe_load(text)


def dashboard() -> dict:
    return json.loads((CONFIGS / "grafana-dashboard.json").read_text())


def all_panels(panels: list[dict]) -> list[dict]:
    out = []
    for p in panels:
        out.append(p)
        out.extend(all_panels(p.get("panels", [])))  # panels inside collapsed rows
    return out


def exprs() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query in the dashboard."""
    return [(p.get("title", ""), t["expr"]) for p in all_panels(dashboard()["panels"])
            for t in p.get("targets", []) if "expr" in t]


def scanned_packages() -> list[Path]:
    """The project's packages (pyproject's setuptools include list), at least the three below."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = meta["tool"]["setuptools"]["packages"]["find"]["include"]
    names = {pat.rstrip("*").rstrip(".") for pat in include} | {"actors", "serve_apps", "cgm_ray"}
    return [ROOT / n for n in sorted(names) if (ROOT / n).is_dir()]


def defined_metrics(paths: list[Path] | None = None) -> dict[str, str]:
    """name -> kind of every ``Counter/Gauge/Histogram("cgm_...")`` literal in the sources."""
    found: dict[str, str] = {}
    for package in paths or scanned_packages():
        for src in sorted(package.rglob("*.py")):
            for kind, name in METRIC_DEF.findall(src.read_text(encoding="utf-8")):
                assert found.get(name, kind) == kind, f"{name} defined as {found[name]} and {kind}"
                found[name] = kind
    return found


def split_exported(exported: str, known: dict[str, str]) -> tuple[str, str] | None:
    """(metric name, suffix) of an exported series name such as ``cgm_x_total``, if known."""
    for name, kind in known.items():
        for suffix in EXPORTED_SUFFIXES[kind]:
            if exported == name + suffix:
                return name, suffix
    return None


# ------------------------------------------------------------------------------ parsing
def test_every_config_parses():
    assert isinstance(load_yaml("cluster.yaml"), dict)
    assert isinstance(load_yaml("serve.yaml"), dict)
    assert rayservice()["apiVersion"] == "ray.io/v1"
    assert isinstance(serve_config_v2(), dict)
    assert dashboard()["panels"]


# ------------------------------------------------------------------------------ RayService
def test_rayservice_deploys_the_same_applications_as_serve_yaml():
    want = load_yaml("serve.yaml")["applications"]
    got = serve_config_v2()["applications"]
    assert [a["name"] for a in got] == [a["name"] for a in want]
    for mine, theirs in zip(got, want):
        for key in ("import_path", "route_prefix", "args", "deployments"):
            assert mine.get(key) == theirs.get(key), (
                f"application {theirs['name']!r}: {key} differs between "
                f"kuberay-rayservice.yaml serveConfigV2 and serve.yaml")
        assert mine == theirs, f"application {theirs['name']!r} differs (keys {sorted(mine)})"


def test_rayservice_proxy_suits_kubernetes():
    # The serve Service routes to every pod's :8000 and KubeRay's worker readiness probe needs a
    # proxy there (ray-project/kuberay#4994): these are the only intended differences.
    cfg = serve_config_v2()
    assert cfg["proxy_location"] == "EveryNode"
    assert cfg["http_options"] == {"host": "0.0.0.0", "port": 8000}


def test_serve_configs_pass_serves_own_schema():
    schema = pytest.importorskip("ray.serve.schema")
    for cfg in (load_yaml("serve.yaml"), serve_config_v2()):
        schema.ServeDeploySchema.model_validate(cfg)


def test_rayservice_cluster_matches_the_pinned_ray_and_wires_secrets():
    pin = ray_pin()
    spec = rayservice()["spec"]["rayClusterConfig"]
    assert spec["rayVersion"] == pin
    assert spec.get("authOptions", {}).get("mode") == "token", "Ray token auth must be on"
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    assert len(groups) >= 2, "a head and at least one worker group"
    for group in groups:
        for c in group["template"]["spec"]["containers"]:
            assert pin in c["image"], f"{c['name']}: image {c['image']} is not Ray {pin}"
            env = {e["name"]: e for e in c.get("env", [])}
            assert {"API_SECRET", "CGM_LAKE_URI"} <= set(env), f"{c['name']}: env {sorted(env)}"
            secret = env["API_SECRET"]
            assert "value" not in secret and "secretKeyRef" in secret.get("valueFrom", {}), (
                f"{c['name']}: API_SECRET must come from a Kubernetes Secret, not a literal")
            assert env["CGM_LAKE_URI"].get("value", "").startswith("s3://")
            assert c["resources"]["requests"] and c["resources"]["limits"]
    for w in spec["workerGroupSpecs"]:
        assert 0 <= w["minReplicas"] <= w["replicas"] <= w["maxReplicas"]


def ray_pin() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [m.group(1) for d in deps if (m := re.match(r"ray(?:\[[^\]]*\])?==([\d.]+)$", d))]
    assert len(pins) == 1, f"pyproject.toml must pin ray exactly once: {deps}"
    return pins[0]


# ------------------------------------------------------------------------------ ray up
def test_cluster_yaml_has_the_ray_up_keys_and_consistent_node_types():
    cfg = load_yaml("cluster.yaml")
    for key in ("cluster_name", "provider", "available_node_types", "head_node_type",
                "max_workers"):
        assert key in cfg, f"cluster.yaml lacks {key}"
    assert cfg["provider"]["type"] == "aws"
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types, f"head_node_type {cfg['head_node_type']} undefined"
    workers = [t for t in types if t != cfg["head_node_type"]]
    assert workers, "at least one worker node type"
    for name, t in types.items():
        assert "resources" in t and "node_config" in t, f"{name}: resources and node_config"
    total_min = 0
    for name in workers:
        lo, hi = types[name].get("min_workers", 0), types[name].get("max_workers", 0)
        assert 0 <= lo <= hi <= cfg["max_workers"], f"{name}: min/max workers"
        total_min += lo
    assert total_min <= cfg["max_workers"]
    # every node type a docker/node override or command names must exist
    text = (CONFIGS / "cluster.yaml").read_text()
    for ref in re.findall(r"\bray\.(?:head|worker)\.[A-Za-z0-9_-]+", text):
        assert ref in types, f"{ref} is referenced but not defined"


def test_cluster_yaml_runs_the_pinned_ray_with_metrics_and_auth():
    cfg = load_yaml("cluster.yaml")
    assert cfg["docker"]["image"] == f"rayproject/ray:{ray_pin()}-py311"
    head = " ".join(cfg["head_start_ray_commands"])
    worker = " ".join(cfg["worker_start_ray_commands"])
    assert "--head" in head and "--dashboard-host=0.0.0.0" in head
    for cmd in (head, worker):
        assert "--metrics-export-port=8080" in cmd
        assert "RAY_AUTH_MODE=token" in cmd
    assert "~/.ray/auth_token" in cfg["file_mounts"]
    assert cfg["file_mounts"]["~/cgm-ray"] == "."
    assert any("pip install" in c and "~/cgm-ray" in c for c in cfg["setup_commands"])


def test_cluster_yaml_passes_rays_own_validation():
    util = pytest.importorskip("ray.autoscaler._private.util")
    util.validate_config(util.prepare_config(load_yaml("cluster.yaml")))


# ------------------------------------------------------------------------------ Grafana
def test_dashboard_shape():
    d = dashboard()
    assert 36 <= d["schemaVersion"] <= 41
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = all_panels(d["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels:
        assert {"h", "w", "x", "y"} <= set(p["gridPos"]), p.get("title")
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert p["targets"] and len(refs) == len(set(refs)), p["title"]
        assert p.get("description"), f"{p['title']}: say what the panel shows"


def test_dashboard_queries_are_well_formed():
    variables = {v["name"] for v in dashboard()["templating"]["list"]}
    for title, expr in exprs():
        for open_, close in ("()", "{}", "[]"):
            assert expr.count(open_) == expr.count(close), f"{title}: unbalanced {open_}{close}"
        for var in re.findall(r"\$\{?(\w+)", expr):
            assert var in variables or var in GRAFANA_BUILTINS, f"{title}: ${var} undefined"
        if re.search(r"_total\b", expr):
            assert "rate(" in expr or "increase(" in expr, f"{title}: a raw counter: {expr}"
        if "_bucket" in expr:
            assert "histogram_quantile(" in expr and "le" in expr, f"{title}: {expr}"


def test_serve_app_name_in_dashboard_matches_serve_yaml():
    apps = {a["name"] for a in load_yaml("serve.yaml")["applications"]}
    for title, expr in exprs():
        for app in re.findall(r'application="([^"]*)"', expr):
            assert app in apps, f"{title}: application {app!r} is not in serve.yaml"


def test_every_cgm_metric_in_the_dashboard_is_defined_with_the_exported_name():
    defined = defined_metrics()
    assert {"cgm_fleet_readings_produced", "cgm_ingest_readings_stored"} <= set(defined), (
        f"the scan found too little: {sorted(defined)}")
    allowed = dict(defined)
    for title, expr in exprs():
        for exported in METRIC_REF.findall(expr):
            hit = split_exported(exported, allowed)
            assert hit is not None, (
                f"{title}: ray_{exported} is no exported name of a metric the code defines "
                f"(counters end in _total, histograms in _bucket/_sum/_count, gauges bare)")


def test_the_monitors_recording_rules_read_only_metrics_the_code_defines():
    defined = defined_metrics()
    rules = yaml.safe_load(RECORDING_RULES.read_text())["groups"][0]["rules"]
    for rule in rules:
        refs = METRIC_REF.findall(rule["expr"])
        assert refs, f"{rule['record']} reads no cgm metric"
        for exported in refs:
            assert split_exported(exported, defined) is not None, (
                f"{rule['record']}: ray_{exported} is no exported name of a metric the code defines")


def test_every_defined_metric_has_a_panel():
    referenced = set()
    allowed = defined_metrics()
    for _title, expr in exprs():
        for exported in METRIC_REF.findall(expr):
            if hit := split_exported(exported, allowed):
                referenced.add(hit[0])
    missing = sorted(set(allowed) - referenced)
    assert not missing, f"metrics without a dashboard panel: {missing}"


def test_serve_builtin_metrics_are_ones_ray_ships():
    """Every ray_serve_* series queried appears in Ray's own bundled Serve dashboards."""
    spec = importlib.util.find_spec("ray")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("ray is not installed")
    boards = Path(spec.submodule_search_locations[0]) / "dashboard/modules/metrics/dashboards"
    shipped = " ".join(p.read_text() for p in boards.glob("serve*_panels.py"))
    if not shipped:
        pytest.skip("this Ray has no bundled Serve dashboards")
    for title, expr in exprs():
        for name in re.findall(r"\bray_serve_[A-Za-z0-9_]+", expr):
            assert re.search(rf"\b{name}\b", shipped), f"{title}: {name} is not a Serve metric"


# ------------------------------------------------------------------------------ the checks
def test_the_scanner_sees_kinds_and_the_suffix_rules_bite(tmp_path):
    """The metric checks can fail: a wrong suffix or an unknown name is not accepted."""
    src = tmp_path / "pkg"
    src.mkdir()
    (src / "m.py").write_text(
        'from ray.util import metrics\n'
        'a = metrics.Counter("cgm_a_things",\n    "d", ("t",))\n'
        'b = metrics.Histogram(name="cgm_b_ms", description="d", boundaries=[1])\n'
        'c = metrics.Gauge("cgm_c_lag", "d")\n'
        'import collections; collections.Counter("not a metric")\n')
    known = defined_metrics([src])
    assert known == {"cgm_a_things": "Counter", "cgm_b_ms": "Histogram", "cgm_c_lag": "Gauge"}
    assert split_exported("cgm_a_things_total", known) == ("cgm_a_things", "_total")
    assert split_exported("cgm_a_things", known) is None            # counters need _total
    assert split_exported("cgm_b_ms_bucket", known) == ("cgm_b_ms", "_bucket")
    assert split_exported("cgm_b_ms", known) is None
    assert split_exported("cgm_c_lag", known) == ("cgm_c_lag", "")
    assert split_exported("cgm_c_lag_total", known) is None         # gauges have no _total
    assert split_exported("cgm_nope_total", known) is None
