"""Online serving contract: Redis keys, cached-list format, and the read path's decisions.

Engine-free (stdlib, orjson, redis-py) so that the scorer, the stream job and the BentoML
read API share it without importing each other.
"""
