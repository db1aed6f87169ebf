"""The online services: the event gateway, the read API, the model service (BentoML) and
the background scorer process around ``flashrec.scoring``."""
