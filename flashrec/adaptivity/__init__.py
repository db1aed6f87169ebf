"""Noticing that shoppers changed, and deciding whether a retrained model may serve.

Pure functions (numpy/scipy only): the Dagster assets, checks and sensors wrap them.
"""
