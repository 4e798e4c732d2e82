"""cgm-ray: distributed CGM simulation, ingest and analytics on Ray.

The package is layered, each layer importing only those below it:

- base (this folder's flat modules): errors, config, schema, fs, sharding, client;
- ``glucose``: the glucose maths (grids, metrics, episodes, alert rules), numpy only;
- ``lake``: the Parquet lake and its Ray Data jobs;
- ``cli``: the ``cgm-ray`` commands, the only layer that sees ``simulators``, ``actors``
  and ``serve_apps`` as well (``actors`` sits above ``serve_apps``, whose client it is).

``tests/test_layers.py`` enforces it.
"""

from __future__ import annotations

__version__ = "0.1.0"
