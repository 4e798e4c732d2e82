"""Glucose maths: reading grids, consensus metrics, MAGE, episodes, targets, trend, alert rules.

Pure functions over numpy arrays in mg/dL; nothing here imports Ray, Arrow or plotting, so a
Serve replica that evaluates alerts loads only numpy and pydantic.
"""
