"""Cost of hybrid retrieval at a full tenant: 20,000 memories of ~100 characters.

    .venv/bin/python bench/retrieval_bench.py [--rows 20000] [--queries 300]

Prints CPU time per question (thread CPU, p50 and p95; the machine is shared,
so wall time is noisier) for each part, with ratios against two baselines
measured in the same run: the dense-only retrieval the store did before
(``VectorStore.retrieve``, int8 scan + rescoring, k 10) and a plain BM25 over
the same texts (dict postings, the "30-line keyword search"). Then the memory:
the index's accounted ``nbytes`` against what tracemalloc sees it allocate,
and the whole tenant (int8 vectors + texts + index) against the 32 MiB budget.

Texts are sentences of Zipf-distributed words from a 6,000-word vocabulary
(frequent words repeat as in speech, rare ones carry the content); questions
take 3-6 words from the same distribution.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Callable

import numpy as np

from mlsdm.engine.embedding import HashingEmbedder
from mlsdm.engine.hybrid import HybridParams, rank
from mlsdm.engine.lexical import LexicalIndex
from mlsdm.engine.store import VectorStore

SYLLABLES = ["ka", "ro", "li", "ne", "mo", "ta", "si", "pe", "du", "va", "gri", "sto", "len", "mar"]


def vocabulary(size: int, rng: np.random.Generator) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES, int(rng.integers(2, 5)))))
    return sorted(words)


def sample_words(vocab: list[str], count: int, rng: np.random.Generator) -> list[str]:
    ranks = np.minimum(rng.zipf(1.3, count), len(vocab)) - 1
    return [vocab[i] for i in ranks]


def make_texts(rows: int, rng: np.random.Generator, vocab: list[str]) -> list[str]:
    texts = []
    for _ in range(rows):
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < 100:
            words.extend(sample_words(vocab, 1, rng))
        texts.append("Speaker: " + " ".join(words))
    return texts


def plain_bm25(texts: list[str]) -> Callable[[str], np.ndarray]:
    docs = [Counter(t.lower().split()) for t in texts]
    lengths = np.array([sum(d.values()) for d in docs], dtype=np.float64)
    avg = float(lengths.mean())
    postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for i, d in enumerate(docs):
        for term, tf in d.items():
            postings[term].append((i, tf))

    def scores(query: str) -> np.ndarray:
        out = np.zeros(len(docs))
        for term in set(query.lower().split()):
            hits = postings.get(term, [])
            idf = math.log(1 + (len(docs) - len(hits) + 0.5) / (len(hits) + 0.5))
            for i, tf in hits:
                out[i] += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * lengths[i] / avg))
        return out

    return scores


def cpu_us(fn: Callable[[int], object], n: int) -> tuple[float, float]:
    samples = []
    for i in range(n):
        start = time.thread_time_ns()
        fn(i)
        samples.append((time.thread_time_ns() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (n - 1))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--quick", action="store_true", help="2,000 memories, 20 questions (smoke)")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.queries = 2000, 20
    rng = np.random.default_rng(28)
    vocab = vocabulary(6000, rng)
    texts = make_texts(args.rows, rng, vocab)
    questions = [
        " ".join(sample_words(vocab, int(rng.integers(3, 7)), rng)) for _ in range(args.queries)
    ]
    embedder = HashingEmbedder(384)
    store = VectorStore(384, args.rows, 1024, 0.5)
    for t in texts:
        store.put(embedder.embed(t), 0.1, 1.0, text=t)
    qvecs = [embedder.embed(q).astype(np.float32) for q in questions]

    tracemalloc.start()
    start = time.perf_counter()
    index = LexicalIndex()
    for row, t in enumerate(texts):
        index.add(row, t, occurred_at=float(row // 20) * 86_400)  # sessions of 20 turns
    build_s = time.perf_counter() - start
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    bm25 = plain_bm25(texts)
    n = args.rows
    params = HybridParams()
    links = (index.neighbours.prev, index.neighbours.next)
    rows = store._rows  # the int8 block the store scans
    lex = [index.scores(q, n) for q in questions]
    dense = [rows.approx_ranks(qvecs[i], n, None) for i in range(len(questions))]

    parts: list[tuple[str, Callable[[int], object]]] = [
        ("dense-only retrieve (baseline)", lambda i: store.retrieve(qvecs[i], 0.1, 0.15, 10)),
        ("plain BM25, dict postings (baseline)", lambda i: bm25(questions[i])),
        ("int8 scan, every row", lambda i: rows.approx_ranks(qvecs[i], n, None)),
        ("lexical scores", lambda i: index.scores(questions[i], n)),
        ("hybrid rank (given both)", lambda i: rank(lex[i], dense[i], None, 10, params, links)),
        (
            "lexical + rank  [budget 400]",
            lambda i: rank(index.scores(questions[i], n), dense[i], None, 10, params, links),
        ),
        (
            "scan + lexical + rank",
            lambda i: rank(
                index.scores(questions[i], n),
                rows.approx_ranks(qvecs[i], n, None),
                None,
                10,
                params,
                links,
            ),
        ),
    ]
    # The pure-Python baseline takes seconds per question at 20k (common words
    # have long postings): 30 questions are enough for its median.
    measured = {
        name: cpu_us(fn, min(30, len(questions)) if "dict postings" in name else len(questions))
        for name, fn in parts
    }
    dense_p50 = measured[parts[0][0]][0]
    bm25_p50 = measured[parts[1][0]][0]
    print(f"{n} memories, {len(questions)} questions; CPU per question (µs)")
    print(f"{'part':38s} {'p50':>8s} {'p95':>8s} {'x dense':>8s} {'x BM25':>8s}")
    for name, (p50, p95) in measured.items():
        print(f"{name:38s} {p50:8.0f} {p95:8.0f} {p50 / dense_p50:8.2f} {p50 / bm25_p50:8.2f}")
    text_bytes = sum(len(t.encode()) for t in texts) + 2 * 8 * n
    mib = 1024 * 1024
    print(f"\nindex build from texts (rebuild on load): {build_s:.2f} s")
    print(
        f"index nbytes (accounted): {index.nbytes / mib:.2f} MiB;"
        f" tracemalloc: {traced / mib:.2f} MiB"
    )
    total = store.nbytes + index.nbytes
    print(
        f"store (int8 vectors + texts as accounted): {store.nbytes / mib:.2f} MiB"
        f" (texts {text_bytes / mib:.2f})"
    )
    print(f"tenant total: {total / mib:.2f} MiB of 32 MiB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
