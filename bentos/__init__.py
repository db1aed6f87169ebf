"""BentoML services: the event gateway (more to come: read API, model service)."""
