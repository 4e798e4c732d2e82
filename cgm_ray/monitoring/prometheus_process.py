"""A Prometheus server process: started on the settings' port, ready when it answers, stopped
by its process id (SIGTERM, then SIGKILL), so nothing is left behind."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from cgm_ray.errors import CgmRayError, ConfigError
from cgm_ray.monitoring.prometheus_config import PrometheusSettings, write_config

INSTALL_HINT = "`make monitor-deps` installs Debian's prometheus package"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0  # Prometheus flushes its head block on SIGTERM: a second or two here


class PrometheusError(CgmRayError):
    """Prometheus could not start, or stopped by itself."""


class PrometheusProcess:
    """``with PrometheusProcess(settings) as prom:`` runs Prometheus for the block."""

    def __init__(self, settings: PrometheusSettings, binary: str = "prometheus") -> None:
        self.settings = settings
        self._binary = shutil.which(binary)
        if self._binary is None:
            raise ConfigError("prometheus", f"not found on PATH; {INSTALL_HINT}")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return self.settings.data_dir / "prometheus.log"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        """Write the configuration, start Prometheus and wait until it answers ready."""
        s = self.settings
        try:
            write_config(s)
        except OSError as exc:
            raise ConfigError("--dir", f"cannot write {exc.filename}: {exc.strerror}") from None
        with open(self.log_file, "ab") as log:
            self._proc = subprocess.Popen(
                [str(self._binary), f"--config.file={s.config_file}",
                 f"--storage.tsdb.path={s.tsdb_dir}", f"--web.listen-address={s.host}:{s.port}",
                 "--storage.tsdb.retention.time=15d"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)  # Ctrl-C stops the watched run first, not this
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.running():
                raise PrometheusError(f"prometheus stopped at start ({self._last_log_line()}); "
                                      f"its log: {self.log_file}")
            try:
                with urllib.request.urlopen(f"{self.settings.url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise PrometheusError(f"prometheus not ready after {READY_TIMEOUT_S:g} s; "
                              f"its log: {self.log_file}")

    def _last_log_line(self) -> str:
        lines = self.log_file.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no log"

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Stop Prometheus by its id: SIGTERM, then SIGKILL if it has not stopped in time."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> PrometheusProcess:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
