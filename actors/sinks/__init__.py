"""Fleet sinks, chosen by the ``sink.kind`` of the fleet config."""

from __future__ import annotations

from actors.config import SinkConfig
from actors.sinks.base import Delivery, Sink, Window
from actors.sinks.parquet import ParquetSink

__all__ = ["Delivery", "Sink", "Window", "make_sink"]


def make_sink(config: SinkConfig) -> Sink:
    """The sink a config describes."""
    return ParquetSink(config.path)
