"""``python -m cgm_ray.cli``: the ``cgm-ray`` command without its console script."""

import sys

from cgm_ray.cli import main

sys.exit(main())
