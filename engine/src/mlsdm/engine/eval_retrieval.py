"""Retrieval suites: exact top-k over synthetic vectors, and told-then-asked.

Told-then-asked (``data/told_then_asked.json``): a user tells twenty facts, each
with a near-miss distractor (two people who moved, two passwords, two
appointments, ...), then asks held-out questions that share few words with the
facts. A hit is the told fact's prompt among the returned context items.
``told_then_asked`` takes the tell/ask operations as callables, so the same
scoring runs on a bare engine here and through the service path in the server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .config import EngineConfig
from .core import CognitiveEngine
from .embedding import Embedder, HashingEmbedder
from .eval_memory import CONVERSATION_FLOOR, conversation_row, engine_retriever
from .results import ContextItem, RefusalReason, SuiteResult
from .store import VectorStore

RETRIEVAL_FLOOR = (
    "synthetic (correlated cluster centres): exact recall@5 == 1.0 and same-cluster "
    "precision@5 >= 0.90 at every size; told-then-asked: recall@5 >= 0.80"
)
TOLD_RECALL_FLOOR = 0.80


@dataclass(frozen=True)
class ToldItem:
    fact: str
    distractor: str
    question: str


@dataclass(frozen=True)
class ToldResult:
    recall_at_1: float
    recall_at_5: float
    ranks: list[int]  # 1-based rank of the fact in each question's context; 0 = absent


def load_told_then_asked() -> list[ToldItem]:
    raw = resources.files(__package__).joinpath("data/told_then_asked.json").read_text("utf-8")
    return [ToldItem(**item) for item in json.loads(raw)["items"]]


def told_then_asked(
    tell: Callable[[str], None],
    ask: Callable[[str], Sequence[ContextItem]],
    items: Sequence[ToldItem] | None = None,
) -> ToldResult:
    """Tell every fact and distractor (interleaved), then ask every question."""
    chosen = list(items if items is not None else load_told_then_asked())
    for item in chosen:
        tell(item.fact)
    for item in reversed(chosen):
        tell(item.distractor)
    ranks = []
    for item in chosen:
        prompts = [c.prompt for c in ask(item.question)]
        ranks.append(prompts.index(item.fact) + 1 if item.fact in prompts else 0)
    n = len(chosen)
    return ToldResult(sum(r == 1 for r in ranks) / n, sum(1 <= r <= 5 for r in ranks) / n, ranks)


def engine_told_then_asked(
    embedder: Embedder | None = None, top_k: int = 5, config: EngineConfig | None = None
) -> ToldResult:
    """Told-then-asked on a bare engine: admit, a fixed answer, commit; a call
    refused for the sleep phase is retried, as a user would."""
    engine = CognitiveEngine(config or EngineConfig(), embedder, clock=lambda: 0.0)

    def call(prompt: str) -> list[ContextItem]:
        while True:
            admission = engine.admit(prompt, 0.95, 64, top_k)
            if admission.outcome.reason is not RefusalReason.SLEEP:
                break
        engine.commit(admission, "Thank you, I will remember that for you.")
        return admission.context

    def tell(prompt: str) -> None:
        call(prompt)

    return told_then_asked(tell, call)


def _clustered(
    rng: np.random.Generator, n: int, dim: int, clusters: int, noise: float
) -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.float64]]:
    # Centres share a common direction (cosine about 0.5 between any two), so
    # clusters are not orthogonal by construction.
    shared = rng.standard_normal(dim)
    shared /= np.linalg.norm(shared)
    own = rng.standard_normal((clusters, dim))
    own /= np.linalg.norm(own, axis=1, keepdims=True)
    centers = np.sqrt(0.5) * shared + np.sqrt(0.5) * own
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    labels = rng.integers(0, clusters, n)
    points = centers[labels] + noise * rng.standard_normal((n, dim)) / np.sqrt(dim)
    return points.astype(np.float32), labels, centers


def _synthetic_row(cfg: EngineConfig, rng: np.random.Generator, n: int) -> dict[str, Any]:
    k, queries = 5, 50
    points, labels, centers = _clustered(rng, n, cfg.dim, clusters=50, noise=0.6)
    store = VectorStore(cfg.dim, n, cfg.store_chunk, cfg.confidence_floor)
    # Every other entry is tagged sleep, so the phase filter is exercised too.
    phases = np.where(np.arange(n) % 2 == 0, cfg.wake_phase_value, cfg.sleep_phase_value)
    for i in range(n):
        store.put(points[i], float(phases[i]), 1.0)
    unit = store.used_vectors().astype(np.float64)
    wake = np.abs(phases - cfg.wake_phase_value) <= cfg.phase_tolerance
    same_cluster = exact = 0.0
    for ql in rng.integers(0, 50, queries):
        q = centers[ql] + 0.6 * rng.standard_normal(cfg.dim) / np.sqrt(cfg.dim)
        slots = [s for s, _ in store.retrieve(q, cfg.wake_phase_value, cfg.phase_tolerance, k)]
        same_cluster += float(np.mean(labels[slots] == ql))
        scores = np.where(wake, unit @ (q / np.linalg.norm(q)), -np.inf)
        truth = set(np.argsort(-scores, kind="stable")[:k].tolist())
        exact += len(truth & set(slots)) / k
    precision, recall = same_cluster / queries, exact / queries
    return {
        "case": f"synthetic n={n}",
        "k": k,
        "same_cluster_precision": round(precision, 3),
        "exact_recall": round(recall, 3),
        "ok": precision >= 0.90 and recall >= 1.0 - 1e-9,
    }


def told_row(name: str, result: ToldResult, floor: float = TOLD_RECALL_FLOOR) -> dict[str, Any]:
    return {
        "case": name,
        "k": 5,
        "recall@1": round(result.recall_at_1, 3),
        "recall@5": round(result.recall_at_5, 3),
        "ranks": " ".join(str(r) for r in result.ranks),
        "ok": result.recall_at_5 >= floor,
    }


def retrieval_suite(
    sizes: tuple[int, ...] = (1_000, 10_000, 20_000), seed: int = 11
) -> SuiteResult:
    cfg = EngineConfig()
    rng = np.random.default_rng(seed)
    rows = [_synthetic_row(cfg, rng, n) for n in sizes]
    told = engine_told_then_asked()
    rows.append(told_row("told-then-asked, engine, default embedder", told))
    talk = conversation_row(
        engine_retriever(HashingEmbedder(cfg.dim)), "conversations, engine recall"
    )
    rows.append(talk)
    headline = {
        "engine_recall@1": told.recall_at_1,
        "engine_recall@5": told.recall_at_5,
        "conversations_recall@10": talk["recall@10"],
        "conversations_x_bm25": talk["x_bm25"],
    }
    floor = f"{RETRIEVAL_FLOOR}; {CONVERSATION_FLOOR}"
    return SuiteResult("retrieval", rows, all(r["ok"] for r in rows), floor, headline)
