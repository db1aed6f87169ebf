"""Session-based next-item recommendation: baselines, candidate generation and a ranker.

The public entry point is :class:`flashrec.recsys.model.TwoTierModel`.
"""
