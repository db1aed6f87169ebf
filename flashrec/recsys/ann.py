"""Nearest-neighbour search over item vectors with FAISS (inner product = cosine).

WHY configurable: exact search is fine for 40k items, but a catalogue of millions needs
HNSW or IVF-PQ; ``AnnIndex.report`` measures what the approximation costs in recall,
memory and query time so the choice is made on numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import faiss
import numpy as np


@dataclass
class AnnConfig:
    kind: str = "hnsw"  # "flat" | "hnsw" | "ivfflat" | "ivfpq"
    hnsw_m: int = 32
    hnsw_ef_search: int = 256
    ivf_lists: int = 256
    ivf_nprobe: int = 16
    pq_m: int = 16  # sub-quantizers; must divide the dimension
    threads: int = 2


class AnnIndex:
    def __init__(self, vectors: np.ndarray, config: AnnConfig | None = None) -> None:
        self.config = config or AnnConfig()
        faiss.omp_set_num_threads(self.config.threads)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.index = self._build(self.vectors)

    @classmethod
    def from_faiss(
        cls, vectors: np.ndarray, index: faiss.Index, config: AnnConfig | None = None
    ) -> AnnIndex:
        """Wrap an already built (e.g. deserialised) index without retraining it."""
        self = cls.__new__(cls)
        self.config = config or AnnConfig()
        faiss.omp_set_num_threads(self.config.threads)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.index = index
        if self.config.kind == "hnsw":
            faiss.downcast_index(index).hnsw.efSearch = self.config.hnsw_ef_search
        elif self.config.kind in ("ivfflat", "ivfpq"):
            faiss.downcast_index(index).nprobe = self.config.ivf_nprobe
        return self

    def _build(self, x: np.ndarray) -> faiss.Index:
        cfg, d = self.config, x.shape[1]
        if cfg.kind == "flat":
            index = faiss.IndexFlatIP(d)
        elif cfg.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = cfg.hnsw_ef_search
        elif cfg.kind == "ivfflat":  # exact vectors, a share of the lists scanned
            quantizer = faiss.IndexFlatIP(d)
            lists = max(1, min(cfg.ivf_lists, len(x) // 39))
            index = faiss.IndexIVFFlat(quantizer, d, lists, faiss.METRIC_INNER_PRODUCT)
            index.train(x)
            index.nprobe = cfg.ivf_nprobe
        elif cfg.kind == "ivfpq":
            quantizer = faiss.IndexFlatIP(d)
            lists = max(1, min(cfg.ivf_lists, len(x) // 39))
            index = faiss.IndexIVFPQ(quantizer, d, lists, cfg.pq_m, 8, faiss.METRIC_INNER_PRODUCT)
            index.train(x)
            index.nprobe = cfg.ivf_nprobe
        else:
            raise ValueError(f"unknown ANN kind {cfg.kind!r} (flat, hnsw, ivfflat, ivfpq)")
        index.add(x)
        return index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, item ids) of shape (n, k); id -1 where fewer than k were found."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        return self.index.search(q, k)

    def memory_bytes(self) -> int:
        return int(faiss.serialize_index(self.index).nbytes)

    def report(self, queries: np.ndarray, k: int = 50) -> dict[str, float]:
        """Recall@k against exact search, index memory and per-query latency."""
        t0 = time.perf_counter()
        _, approx = self.search(queries, k)
        elapsed = time.perf_counter() - t0
        exact_index = faiss.IndexFlatIP(self.vectors.shape[1])
        exact_index.add(self.vectors)
        _, exact = exact_index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        found = sum(len(np.intersect1d(a, e)) for a, e in zip(approx, exact, strict=True))
        return {
            "kind": self.config.kind,  # type: ignore[dict-item]
            "recall_vs_exact": found / max(exact.size, 1),
            "memory_mb": self.memory_bytes() / 2**20,
            "query_ms": elapsed * 1000 / max(len(queries), 1),
        }
