"""Dagster entry points: the Definitions object, jobs, schedules and the demo runner."""
