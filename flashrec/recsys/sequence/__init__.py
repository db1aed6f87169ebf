"""A self-attentive (SASRec-style) model of the session's item order.

WHY a package of small modules: the configuration and the window layout are plain numpy
(importable anywhere), while ``net``/``train``/``model`` import JAX; the two-tier model
imports JAX only when it actually holds a sequence model.
"""

from flashrec.recsys.sequence.config import SequenceConfig

__all__ = ["SequenceConfig"]
