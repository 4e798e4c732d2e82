"""The Parquet lake: its store, input readers, the ETL, cohort statistics, exports and reports.

Every batch job fans out one Ray Data task per patient bucket or input group
(``cgm_ray.lake.tasks``); the lake keeps each patient in one bucket, so none shuffles.
"""
