"""Evidence recall@5/@10 on long multi-session conversations: plain BM25 vs the
engine's hybrid retrieval, overall and by question type, side by side.

    .venv/bin/python bench/memory_eval.py                      # the shipped set
    .venv/bin/python bench/memory_eval.py --realtalk DIR       # REALTALK's data/
    .venv/bin/python bench/memory_eval.py --minilm ...         # also with MiniLM
    .venv/bin/python bench/memory_eval.py --sweep ...          # lexical/neighbour weights

Sets: the shipped synthetic set (engine/src/mlsdm/engine/data/conversations.json,
written by bench/make_conversations.py), and REALTALK (Lee et al. 2025, 10 real
21-day messaging conversations between two people, LoCoMo's format; GitHub
danny911kr/REALTALK, data/Chat_*.json; the repository states no licence, so it
is read from a local copy and never committed). LoCoMo is NOT used: it is the
issue's held-out set (REALTALK's repository also holds a copy under data/locomo/:
this script reads only data/Chat_*.json).

A REALTALK turn is told as in the acceptance run: "Speaker: words", the
session's date as its time, no session id. Question types: category 1
multi-hop, 2 temporal, 3 inference (REALTALK has no single-hop category);
evidence ids absent from the dialogue are dropped. The pseudonymised speaker
"Emi" of Chat_1 is named "Kate" as its questions name her.

Methods: (a) plain BM25 (Okapi k1 1.2 b 0.75, lowercase whitespace tokens),
(a') BM25 over lowercase letter/digit words (punctuation stripped: a fairer
keyword baseline), (b) dense cosine only, (c) the hybrid (lexical index +
dense + neighbours, default settings) through the engine's remember/recall
(the service's path without the RPC; --sweep rows run the modules directly on
a simulated store); each with the default embedder and,
with --minilm, all-MiniLM-L6-v2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from mlsdm.engine.embedding import Embedder, HashingEmbedder
from mlsdm.engine.eval_memory import (
    Conversation,
    RetrieverFactory,
    engine_retriever,
    evidence_recall,
    load_conversations,
    module_retriever,
    plain_bm25,
    word_bm25,
)
from mlsdm.engine.hybrid import HybridParams

TYPES = {1: "multi-hop", 2: "temporal", 3: "inference"}
ALIAS = {("Chat_1_Emi_Elise", "Emi"): "Kate", ("*", "elise"): "Elise"}


def realtalk(folder: Path) -> dict[str, Any]:
    """REALTALK's data/Chat_*.json in this harness's layout."""
    convs = []
    paths = sorted(folder.glob("Chat_*.json"), key=lambda p: int(p.stem.split("_")[1]))
    for path in paths:
        raw = json.loads(path.read_text("utf-8"))
        keys = sorted((k for k in raw if re.fullmatch(r"session_\d+", k)), key=lambda k: int(k[8:]))
        turns = []
        for number, key in enumerate(keys, 1):
            when = datetime.strptime(raw[key + "_date_time"], "%d.%m.%Y, %H:%M:%S").isoformat()
            for t in raw[key]:
                who = ALIAS.get((path.stem, t["speaker"])) or ALIAS.get(("*", t["speaker"]))
                turns.append(
                    {
                        "id": t["dia_id"],
                        "speaker": who or t["speaker"],
                        "session": number,
                        "time": when,
                        "text": t["clean_text"],
                    }
                )
        questions = [
            {"question": q["question"], "evidence": q["evidence"], "type": TYPES[q["category"]]}
            for q in raw["qa"]
            if q["category"] in TYPES
        ]
        convs.append({"name": path.stem, "turns": turns, "questions": questions})
    return {"conversations": convs}


def load(args: argparse.Namespace) -> list[Conversation]:
    if args.realtalk is None:
        return load_conversations()
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "mlsdm_realtalk_eval.json"
    tmp.write_text(json.dumps(realtalk(Path(args.realtalk))), encoding="utf-8")
    return load_conversations(tmp)


def line(name: str, got: dict[tuple[int, str], float], base: float, types: list[str]) -> str:
    cells = " ".join(f"{got.get((10, t), 0.0):9.3f}" for t in types)
    ratio = got[(10, "all")] / base if base else float("nan")
    return f"{name:34s} {got[(5, 'all')]:6.3f} {got[(10, 'all')]:6.3f} {ratio:7.2f}x {cells}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--realtalk", help="REALTALK's data/ folder (Chat_*.json)")
    ap.add_argument("--minilm", action="store_true", help="also with all-MiniLM-L6-v2")
    ap.add_argument("--sweep", action="store_true", help="sweep the hybrid's two weights")
    ap.add_argument("--quick", action="store_true", help="the shipped set, default embedder")
    args = ap.parse_args()
    if args.quick:
        args.realtalk, args.minilm, args.sweep = None, False, False
    convs = load(args)
    types = sorted({q.type for c in convs for q in c.questions})
    embedders: list[tuple[str, Embedder]] = [("default", HashingEmbedder(384))]
    if args.minilm:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from mlsdm.server.service.embeddings import MiniLMEmbedder

        embedders.append(("minilm", MiniLMEmbedder()))
    turns = sum(len(c.turns) for c in convs)
    questions = sum(len(c.questions) for c in convs)
    print(f"{len(convs)} conversations, {turns} turns, {questions} questions")
    print(
        f"{'method':34s} {'R@5':>6s} {'R@10':>6s} {'xBM25':>8s} "
        + " ".join(f"{t:>9s}" for t in types)
    )
    base = evidence_recall(convs, plain_bm25)
    b10 = base[(10, "all")]
    print(line("(a) plain BM25", base, b10, types))
    print(line("(a') BM25, punctuation stripped", evidence_recall(convs, word_bm25), b10, types))
    for name, embedder in embedders:
        methods: list[tuple[str, RetrieverFactory]] = [
            (f"(b) dense only, {name}", module_retriever(embedder, dense_only=True)),
            (f"(c) hybrid, engine recall, {name}", engine_retriever(embedder)),
        ]
        if args.sweep:
            methods += [
                (
                    f"    lexical index only, {name}",
                    module_retriever(embedder, hybrid=HybridParams(1.0, 0.0)),
                ),
                (
                    f"    hybrid w/o neighbours, {name}",
                    module_retriever(embedder, hybrid=HybridParams(0.7, 0.0)),
                ),
            ]
            for w in (0.5, 0.6, 0.8):
                methods.append(
                    (
                        f"    hybrid w {w}, {name}",
                        module_retriever(embedder, hybrid=HybridParams(w)),
                    )
                )
        for label, factory in methods:
            print(line(label, evidence_recall(convs, factory), b10, types), flush=True)


if __name__ == "__main__":
    main()
