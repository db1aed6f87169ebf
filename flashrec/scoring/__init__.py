"""Background scoring: the model artifact for the catalog and the scorer that fills the cache.

WHY a package of small modules: the scorer process must not load training code (xgboost,
faiss) just to write content-based lists, and the model service must not load the scorer.
``catalog``, ``vocab``, ``tiers``, ``segments`` and ``scorer`` are plain Python on top of
redis-py; only ``catalog_model`` imports ``flashrec.recsys`` (training and inference).
No module here imports an engine (BentoML, Feast, ...): the scorer reaches Feast and the
model service through injected callables.
"""
