"""Fleet sinks, chosen by the ``sink.kind`` of the fleet config."""

from __future__ import annotations

from actors.config import SinkConfig
from actors.sinks.base import Delivery, Sink, Window
from actors.sinks.http import HttpSink
from actors.sinks.nightscout import NightscoutSink
from actors.sinks.parquet import ParquetSink
from actors.sinks.serve_handle import ServeHandleSink
from simulators.nightscout_profile import ProgrammedTherapy

__all__ = ["Delivery", "Sink", "Window", "make_sink"]


def make_sink(config: SinkConfig, therapy: ProgrammedTherapy | None = None) -> Sink:
    """The sink a config describes; ``therapy`` is the shard's patients' (the profiles a
    Loop-style Nightscout sink uploads)."""
    if config.kind == "http":
        return HttpSink(config.url, config.secret_env, config.batch_size, config.concurrency,
                        config.timeout_s, config.max_retries)
    if config.kind == "nightscout":
        headers, params = config.credentials()
        return NightscoutSink(config.url, config.style, headers, params, config.batch_size,
                              config.concurrency, config.timeout_s, config.max_retries, therapy)
    if config.kind == "serve":
        return ServeHandleSink(config.app_name, config.max_retries)
    return ParquetSink(config.path)
