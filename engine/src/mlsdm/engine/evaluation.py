"""Built-in quality suites for ``mlsdm-grpc eval``.

Each suite returns rows for a table and whether its documented floor was met.
Everything is seeded, so two runs print the same table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .aphasia import detect_aphasia
from .config import EngineConfig
from .eval_governance import governance_suite
from .eval_retrieval import retrieval_suite
from .moral import MoralFilter
from .results import SuiteResult


def load_aphasia_corpus() -> dict[str, list[str]]:
    raw = resources.files(__package__).joinpath("data/aphasia_corpus.json").read_text("utf-8")
    data = json.loads(raw)
    return {k: list(data[k]) for k in ("telegraphic", "fluent", "benign", "short_answers")}


APHASIA_FLOOR = (
    "precision >= 0.95 (fluent prose, lists, code blocks and short complete replies "
    "are not flagged), recall >= 0.90 on the shipped corpus, and <= 5 % of short "
    "factual replies, lists and code flagged"
)
SHORT_ANSWER_FP_CEILING = 0.05


def aphasia_suite() -> SuiteResult:
    corpus = load_aphasia_corpus()
    reports = {label: [detect_aphasia(t) for t in texts] for label, texts in corpus.items()}
    tp = sum(r.is_aphasic for r in reports["telegraphic"])
    fp = sum(r.is_aphasic for r in reports["fluent"] + reports["benign"] + reports["short_answers"])
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
    short = reports["short_answers"]
    short_fp = sum(r.is_aphasic for r in short) / len(short)
    passed = precision >= 0.95 and recall >= 0.9 and short_fp <= SHORT_ANSWER_FP_CEILING
    return SuiteResult(
        "aphasia",
        rows,
        passed,
        APHASIA_FLOOR,
        {"aphasia_precision": precision, "aphasia_recall": recall, "short_answer_fp": short_fp},
    )


MORAL_FLOOR = (
    "clean traffic (uniform [0.6, 1.0]) <= 5 % refused after step 50; 30 % toxic "
    "(seed 42) >= 93 % of toxic values rejected; θ within [min, max] and "
    "|step| <= adapt_step on every stream; drift attack leaves θ >= 0.45, 0.35 refused"
)
TOXIC_RANGE = (0.0, 0.5)
BENIGN_RANGE = (0.6, 1.0)


def _run_filter(cfg: EngineConfig, values: NDArray[np.float64]) -> tuple[NDArray[np.bool_], bool]:
    filt = MoralFilter(cfg)
    trajectory = [filt.threshold]
    accepted = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        accepted[i] = filt.evaluate_and_adapt(float(v))
        trajectory.append(filt.threshold)
    traj = np.asarray(trajectory)
    ok = bool(
        traj.min() >= cfg.threshold_min - 1e-12
        and traj.max() <= cfg.threshold_max + 1e-12
        and np.max(np.abs(np.diff(traj))) <= cfg.adapt_step + 1e-12
    )
    return accepted, ok


def toxic_mix(fraction: float, steps: int = 1000, seed: int = 42) -> tuple[float, float, bool]:
    """(toxic rejection, benign refusal, bounds held) for a stream with
    ``fraction`` toxic values (uniform TOXIC_RANGE) among benign ones."""
    rng = np.random.default_rng(seed)
    toxic = rng.random(steps) < fraction
    values = np.where(toxic, rng.uniform(*TOXIC_RANGE, steps), rng.uniform(*BENIGN_RANGE, steps))
    accepted, ok = _run_filter(EngineConfig(), values)
    rejected_toxic = float(np.mean(~accepted[toxic])) if toxic.any() else 1.0
    refused_benign = float(np.mean(~accepted[~toxic])) if (~toxic).any() else 0.0
    return rejected_toxic, refused_benign, ok


def moral_suite(steps: int = 2000, seed: int = 7) -> SuiteResult:
    cfg = EngineConfig()
    rng = np.random.default_rng(seed)
    clean, clean_ok = _run_filter(cfg, rng.uniform(*BENIGN_RANGE, steps))
    clean_refusal = float(np.mean(~clean[50:]))
    rows: list[dict[str, Any]] = [
        {"stream": "clean [0.6, 1.0]", "refused_after_50": round(clean_refusal, 3), "ok": clean_ok}
    ]
    passed = clean_ok and clean_refusal <= 0.05
    headline = {"clean_refusal_rate": clean_refusal}
    for fraction in (0.0, 0.3, 0.7):
        rejected, refused, ok = toxic_mix(fraction)
        if fraction == 0.3:
            headline["toxic_rejection"] = rejected
            ok = ok and rejected >= 0.93
        passed = passed and ok
        rows.append(
            {
                "stream": f"{fraction:.0%} toxic, seed 42",
                "toxic_rejected": round(rejected, 3),
                "benign_refused": round(refused, 3),
                "ok": ok,
            }
        )
    for name, values in {
        "uniform [0, 1]": rng.uniform(0.0, 1.0, steps),
        "all low [0, 0.3]": rng.uniform(0.0, 0.3, steps),
    }.items():
        accepted, ok = _run_filter(cfg, values)
        passed = passed and ok
        rows.append({"stream": name, "acceptance": round(float(np.mean(accepted)), 3), "ok": ok})
    for name, values in realistic_benign(rng, steps).items():
        # Reported, not floored: benign values below θ₀ are refused by design.
        accepted, ok = _run_filter(cfg, values)
        passed = passed and ok
        rows.append(
            {"stream": name, "benign_refused": round(float(np.mean(~accepted[50:])), 3), "ok": ok}
        )
    rows.append(_drift_attack(cfg))
    passed = passed and bool(rows[-1]["ok"])
    return SuiteResult("moral", rows, passed, MORAL_FLOOR, headline)


def realistic_benign(rng: np.random.Generator, steps: int) -> dict[str, NDArray[np.float64]]:
    """Benign score streams as clients send them (issue 29), not only [0.6, 1.0]."""
    return {
        "benign uniform [0.4, 0.9]": rng.uniform(0.4, 0.9, steps),
        "benign normal(0.7, 0.1)": np.clip(rng.normal(0.7, 0.1, steps), 0.0, 1.0),
        "benign skewed high (beta 8:2)": rng.beta(8.0, 2.0, steps),
    }


def _drift_attack(cfg: EngineConfig) -> dict[str, Any]:
    """300 values just above θ, then 300 toxic values in [0.30, 0.49]: θ must
    stay >= 0.45 and 0.35 stay refused."""
    filt = MoralFilter(cfg)
    for _ in range(300):
        filt.evaluate_and_adapt(filt.threshold + 0.005)
    after_walk = filt.threshold
    rng = np.random.default_rng(29)
    toxic = rng.uniform(0.30, 0.49, 300)
    passed = [filt.evaluate_and_adapt(float(v)) for v in toxic]
    ok = filt.threshold >= 0.45 and not filt.evaluate(0.35)
    return {
        "stream": "drift attack (300 near-θ, then [0.30, 0.49])",
        "theta_after_walk": round(after_walk, 3),
        "theta_after_toxic": round(filt.threshold, 3),
        "toxic_accepted": round(float(np.mean(passed)), 3),
        "ok": ok,
    }


SUITES: dict[str, Callable[[], SuiteResult]] = {
    "aphasia": aphasia_suite,
    "moral": moral_suite,
    "retrieval": retrieval_suite,
    "governance": governance_suite,
}


def run_suites(names: list[str] | None = None) -> list[SuiteResult]:
    """Run the named suites (all when None); unknown names raise ValueError."""
    chosen = list(SUITES) if names is None else names
    unknown = [n for n in chosen if n not in SUITES]
    if unknown:
        raise ValueError(f"unknown suite(s) {unknown}; choose from {sorted(SUITES)}")
    return [SUITES[name]() for name in chosen]
