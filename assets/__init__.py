"""Dagster software-defined assets: thin wrappers that call the plain jobs and add
resources, metadata and checks around them."""
