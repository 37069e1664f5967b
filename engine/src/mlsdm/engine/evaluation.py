"""Built-in quality suites for ``mlsdm-grpc eval``.

Each suite returns rows for a table and whether its documented floor was met.
Everything is seeded, so two runs print the same table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .aphasia import detect_aphasia
from .config import EngineConfig
from .embedding import HashingEmbedder
from .moral import MoralFilter
from .store import VectorStore


@dataclass(frozen=True)
class SuiteResult:
    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    passed: bool = True
    floor: str = ""


def load_aphasia_corpus() -> dict[str, list[str]]:
    raw = resources.files(__package__).joinpath("data/aphasia_corpus.json").read_text("utf-8")
    data = json.loads(raw)
    return {"telegraphic": list(data["telegraphic"]), "fluent": list(data["fluent"])}


APHASIA_FLOOR = "precision >= 0.90 and recall >= 0.90 on the shipped corpus"


def aphasia_suite() -> SuiteResult:
    corpus = load_aphasia_corpus()
    reports = {label: [detect_aphasia(t) for t in texts] for label, texts in corpus.items()}
    tp = sum(r.is_aphasic for r in reports["telegraphic"])
    fp = sum(r.is_aphasic for r in reports["fluent"])
    fn = len(reports["telegraphic"]) - tp
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    rows: list[dict[str, Any]] = [
        {
            "class": label,
            "texts": len(rs),
            "flagged": sum(r.is_aphasic for r in rs),
            "mean_severity": round(float(np.mean([r.severity for r in rs])), 3),
        }
        for label, rs in reports.items()
    ]
    rows.append({"class": "overall", "precision": round(precision, 3), "recall": round(recall, 3)})
    return SuiteResult("aphasia", rows, precision >= 0.9 and recall >= 0.9, APHASIA_FLOOR)


MORAL_FLOOR = (
    "threshold within [min, max] and |step| <= adapt_step on every stream; "
    "uniform and bimodal acceptance in [0.40, 0.60]; all-high ends at max, all-low at min"
)


def moral_suite(steps: int = 2000, seed: int = 7) -> SuiteResult:
    cfg = EngineConfig()
    rng = np.random.default_rng(seed)
    halves = rng.random(steps) < 0.5
    streams: dict[str, NDArray[np.float64]] = {
        "all_high": rng.uniform(0.9, 1.0, steps),
        "all_low": rng.uniform(0.0, 0.3, steps),
        "uniform": rng.uniform(0.0, 1.0, steps),
        "bimodal": np.where(halves, rng.uniform(0.05, 0.25, steps), rng.uniform(0.75, 0.95, steps)),
    }
    rows: list[dict[str, Any]] = []
    passed = True
    for name, values in streams.items():
        filt = MoralFilter(cfg)
        trajectory = [filt.threshold]
        accepted = 0
        for v in values:
            accepted += filt.evaluate_and_adapt(float(v))
            trajectory.append(filt.threshold)
        traj = np.asarray(trajectory)
        in_bounds = bool(
            traj.min() >= cfg.threshold_min - 1e-12 and traj.max() <= cfg.threshold_max + 1e-12
        )
        small_steps = bool(np.max(np.abs(np.diff(traj))) <= cfg.adapt_step + 1e-12)
        rate = accepted / steps
        ok = in_bounds and small_steps
        if name in ("uniform", "bimodal"):
            ok = ok and 0.40 <= rate <= 0.60
        elif name == "all_high":
            ok = ok and bool(abs(traj[-1] - cfg.threshold_max) < 1e-9)
        else:
            ok = ok and bool(abs(traj[-1] - cfg.threshold_min) < 1e-9)
        passed = passed and ok
        samples = [round(float(traj[i]), 2) for i in (0, 10, 50, 200, len(traj) - 1)]
        rows.append(
            {
                "stream": name,
                "acceptance": round(rate, 3),
                "theta_min": round(float(traj.min()), 2),
                "theta_max": round(float(traj.max()), 2),
                "theta_trajectory": samples,
                "ok": ok,
            }
        )
    return SuiteResult("moral", rows, passed, MORAL_FLOOR)


RETRIEVAL_FLOOR = (
    "synthetic: same-cluster precision@5 >= 0.95 and exact recall@5 == 1.0 at every size; "
    "paraphrases: recall@5 >= 0.80"
)

PARAPHRASES: tuple[tuple[str, str], ...] = (
    ("How do I reset my password?", "What are the steps to reset a forgotten password?"),
    ("What is the capital city of France?", "Which city is the capital of France?"),
    ("How can I cancel my subscription?", "I want to cancel the subscription I pay for."),
    ("The train to Berlin is delayed by an hour.", "Our Berlin train has an hour delay."),
    ("How do I boil an egg?", "What is the best way to boil eggs?"),
    ("My laptop battery drains very fast.", "The battery of my laptop drains quickly."),
    ("Where can I download the invoice for my order?", "Download link for my order invoice?"),
    ("Explain how photosynthesis works in plants.", "How does photosynthesis work in a plant?"),
    ("What time does the pharmacy close today?", "When does the pharmacy close today?"),
    ("Translate this sentence into Spanish.", "Please translate the sentence to Spanish."),
    ("Recommend a good book about history.", "Can you recommend a history book?"),
    ("How much does shipping to Canada cost?", "What is the shipping cost to Canada?"),
    ("Why is the sky blue during the day?", "What makes the sky look blue in the day?"),
    ("Set an alarm for seven in the morning.", "Please set my alarm to seven morning."),
    ("How do I install Python on Windows?", "Installing Python on a Windows machine."),
    ("What are symptoms of the flu?", "Which symptoms does the flu cause?"),
    ("Convert ten miles to kilometers.", "How many kilometers are ten miles?"),
    ("Find a vegetarian restaurant nearby.", "Is there a vegetarian restaurant near me?"),
    ("How do I change the tire on my bike?", "Changing a bike tire, how to do it?"),
    ("What is the interest rate on savings accounts?", "Savings account interest rate today?"),
)


def _clustered(
    rng: np.random.Generator, n: int, dim: int, clusters: int, noise: float
) -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.float64]]:
    centers = rng.standard_normal((clusters, dim))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    labels = rng.integers(0, clusters, n)
    points = centers[labels] + noise * rng.standard_normal((n, dim)) / np.sqrt(dim)
    return points.astype(np.float32), labels, centers


def retrieval_suite(
    sizes: tuple[int, ...] = (1_000, 10_000, 20_000), seed: int = 11
) -> SuiteResult:
    cfg = EngineConfig()
    rng = np.random.default_rng(seed)
    k, queries = 5, 50
    rows: list[dict[str, Any]] = []
    passed = True
    for n in sizes:
        points, labels, centers = _clustered(rng, n, cfg.dim, clusters=50, noise=0.6)
        store = VectorStore(cfg.dim, n, cfg.store_chunk, cfg.confidence_floor)
        # Every other entry is tagged sleep, so the phase filter is exercised too.
        phases = np.where(np.arange(n) % 2 == 0, cfg.wake_phase_value, cfg.sleep_phase_value)
        for i in range(n):
            store.put(points[i], float(phases[i]), 1.0)
        unit = store.used_vectors().astype(np.float64)
        wake = np.abs(phases - cfg.wake_phase_value) <= cfg.phase_tolerance
        q_labels = rng.integers(0, 50, queries)
        same_cluster = exact = 0.0
        for ql in q_labels:
            q = centers[ql] + 0.6 * rng.standard_normal(cfg.dim) / np.sqrt(cfg.dim)
            got = store.retrieve(q, cfg.wake_phase_value, cfg.phase_tolerance, k)
            slots = [s for s, _ in got]
            same_cluster += float(np.mean(labels[slots] == ql))
            scores = np.where(wake, unit @ (q / np.linalg.norm(q)), -np.inf)
            truth = set(np.argsort(-scores, kind="stable")[:k].tolist())
            exact += len(truth & set(slots)) / k
        precision, recall = same_cluster / queries, exact / queries
        ok = precision >= 0.95 and recall >= 1.0 - 1e-9
        passed = passed and ok
        rows.append(
            {
                "case": f"synthetic n={n}",
                "k": k,
                "same_cluster_precision": round(precision, 3),
                "exact_recall": round(recall, 3),
                "ok": ok,
            }
        )
    recall5, recall1 = _paraphrase_recall(cfg, k)
    ok = recall5 >= 0.80
    passed = passed and ok
    rows.append(
        {
            "case": f"paraphrases n={len(PARAPHRASES)}",
            "k": k,
            "recall@1": round(recall1, 3),
            "recall@5": round(recall5, 3),
            "ok": ok,
        }
    )
    return SuiteResult("retrieval", rows, passed, RETRIEVAL_FLOOR)


def _paraphrase_recall(cfg: EngineConfig, k: int) -> tuple[float, float]:
    embedder = HashingEmbedder(cfg.dim)
    store = VectorStore(cfg.dim, len(PARAPHRASES), cfg.store_chunk, cfg.confidence_floor)
    for first, _ in PARAPHRASES:
        store.put(embedder.embed(first), cfg.wake_phase_value, 1.0, first)
    hits5 = hits1 = 0
    for i, (_, second) in enumerate(PARAPHRASES):
        got = [s for s, _ in store.retrieve(embedder.embed(second), cfg.wake_phase_value, 0.15, k)]
        hits5 += i in got
        hits1 += bool(got) and got[0] == i
    return hits5 / len(PARAPHRASES), hits1 / len(PARAPHRASES)


SUITES: dict[str, Callable[[], SuiteResult]] = {
    "aphasia": aphasia_suite,
    "moral": moral_suite,
    "retrieval": retrieval_suite,
}


def run_suites(names: list[str] | None = None) -> list[SuiteResult]:
    """Run the named suites (all when None); unknown names raise ValueError."""
    chosen = list(SUITES) if names is None else names
    unknown = [n for n in chosen if n not in SUITES]
    if unknown:
        raise ValueError(f"unknown suite(s) {unknown}; choose from {sorted(SUITES)}")
    return [SUITES[name]() for name in chosen]
