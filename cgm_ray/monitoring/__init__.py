"""Watching a local Ray run: Prometheus configured to scrape it, with cgm-ray's recording rules.

No Ray imports: the monitor runs beside Ray and finds its nodes through the service-discovery
file the Ray dashboard writes.
"""
