"""Train the content scorer's head (mlsdm.engine.content_scorer) and print its
held-out numbers. Not part of any package: the data stays out of the wheel,
only the weights file it writes ships.

    python engine/training/train_content_scorer.py --data DIR --final \
        --safe-weight 2 --chat-weight 80 \
        --out engine/src/mlsdm/engine/data/content_scorer.npz \
        --dev-out engine/src/mlsdm/engine/data/governance_dev.json

DIR holds these files, fetched from public GitHub repositories (licences in
engine/training/README.md):

  advbench_harmful_behaviors.csv   llm-attacks/llm-attacks data/advbench/ (MIT)
  advbench_harmful_strings.csv     llm-attacks/llm-attacks data/advbench/ (MIT)
  harmbench_behaviors_text_all.csv centerforaisafety/HarmBench data/behavior_datasets/ (MIT)
  harmbench_targets_text.json      centerforaisafety/HarmBench data/optimizer_targets/ (MIT)
  gsm8k_train.jsonl                openai/grade-school-math (MIT)
  selfinstruct_seed_tasks.jsonl    yizhongw/self-instruct data/ (Apache-2.0)
  selfinstruct_user_oriented.jsonl yizhongw/self-instruct human_eval/ (Apache-2.0)
  topicalchat_*.json               alexa/Topical-Chat conversations/{valid,test}_{freq,rare}.json
                                   (CDLA-Sharing-1.0)
  alpaca_harmless_train.json       only with --with-alpaca (CC BY-NC 4.0): never for
                                   the shipped weights

plus engine/training/written_prompts.py (written for this project) and the
project's synthetic conversations (mlsdm/engine/data/conversations.json).

The split is made before training: 20 % of every public source at random
(seed 7; a whole chat conversation is one unit), and 20 % of the written
*templates* (whole templates held out). The held-out numbers are printed per
source/category. A sample of the held-out prompts is written as the dev set of
`eval --suite governance`; with --final the shipped model is then trained on
everything but that dev set. Nothing here reads XSTest, OR-Bench or any other
over-refusal or jailbreak evaluation set, LoCoMo, or REALTALK (no licence; it
is only a measurement: engine/training/README.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chat_sources import synthetic_chats, topical_chat
from written_prompts import written_prompts

from mlsdm.engine.content_scorer import SHRINK, ContentModel, feature_indices

SEED = 7
HOLDOUT = 0.2


@dataclass(frozen=True)
class Example:
    text: str
    unsafe: bool
    source: str  # data set or written category
    group: str  # the unit of the held-out split


def _csv_column(path: Path, column: str) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        return [row[column].strip() for row in csv.DictReader(f) if row[column].strip()]


def _jsonl(path: Path, key: str) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            value = json.loads(line)[key]
            if isinstance(value, str) and value.strip():
                out.append(value.strip())
    return out


def load_alpaca(data: Path) -> list[Example]:
    """Opt-in (--with-alpaca): CC BY-NC 4.0, so the shipped weights leave it out."""
    rows = json.loads((data / "alpaca_harmless_train.json").read_text())
    texts = dict.fromkeys(r["instruction"] for r in rows)
    return [Example(t, False, "alpaca", f"alpaca:{i}") for i, t in enumerate(texts)]


def load_public(data: Path) -> list[Example]:
    sources: list[tuple[str, bool, list[str]]] = [
        ("advbench", True, _csv_column(data / "advbench_harmful_behaviors.csv", "goal")),
        ("advbench_strings", True, _csv_column(data / "advbench_harmful_strings.csv", "target")),
        (
            "harmbench",
            True,
            [
                b
                for b, ctx in zip(
                    _csv_column(data / "harmbench_behaviors_text_all.csv", "Behavior"),
                    _harmbench_has_context(data / "harmbench_behaviors_text_all.csv"),
                    strict=True,
                )
                if not ctx
            ],
        ),
        (
            "harmbench_targets",
            True,
            list(json.loads((data / "harmbench_targets_text.json").read_text()).values()),
        ),
        ("gsm8k", False, _jsonl(data / "gsm8k_train.jsonl", "question")),
        ("selfinstruct", False, _jsonl(data / "selfinstruct_seed_tasks.jsonl", "instruction")
         + _jsonl(data / "selfinstruct_user_oriented.jsonl", "instruction")),
    ]
    out = []
    for name, unsafe, texts in sources:
        for i, t in enumerate(dict.fromkeys(texts)):
            out.append(Example(t, unsafe, name, f"{name}:{i}"))
    return out + load_chats(data)


def load_chats(data: Path) -> list[Example]:
    """Benign chat turns; a whole conversation is one unit of the split."""
    chats = [("topicalchat", topical_chat(data, SEED)), ("synthetic_chat", synthetic_chats(
        Path(__file__).resolve().parents[1] / "src/mlsdm/engine/data/conversations.json"))]
    out = []
    for name, turns in chats:
        seen: set[str] = set()
        for conv, text in turns:
            if text not in seen:
                seen.add(text)
                out.append(Example(text, False, name, f"{name}:{conv}"))
    return out


def _harmbench_has_context(path: Path) -> list[bool]:
    with path.open(newline="", encoding="utf-8") as f:
        return [bool(row["ContextString"].strip()) for row in csv.DictReader(f)
                if row["Behavior"].strip()]


def load_written() -> list[Example]:
    return [
        Example(w.text, w.unsafe, f"written:{w.category}", f"written:{w.template}")
        for w in written_prompts()
    ]


def split(examples: list[Example]) -> tuple[list[Example], list[Example]]:
    groups = sorted({e.group for e in examples})
    rng = random.Random(SEED)
    held = {g for g in groups if rng.random() < HOLDOUT}
    train = [e for e in examples if e.group not in held]
    test = [e for e in examples if e.group in held]
    return train, test


@dataclass
class Matrix:
    idx: NDArray[np.int64]
    row: NDArray[np.int64]
    scale: NDArray[np.float64]  # 1/sqrt(n + SHRINK) per row
    n: int


def featurise(examples: list[Example], bits: int) -> Matrix:
    per = [feature_indices(e.text, bits) for e in examples]
    sizes = np.array([p.size + SHRINK for p in per])
    return Matrix(
        np.concatenate(per),
        np.repeat(np.arange(len(per)), [p.size for p in per]),
        1.0 / np.sqrt(sizes),
        len(per),
    )


def logits(m: Matrix, w: NDArray[np.float64], b: float) -> NDArray[np.float64]:
    sums = np.bincount(m.row, weights=w[m.idx], minlength=m.n)
    return b + sums * m.scale


def train(
    m: Matrix, y: NDArray[np.float64], sw: NDArray[np.float64], bits: int, l2: float, epochs: int
) -> tuple[NDArray[np.float64], float]:
    """Full-batch Adam on the weighted logistic loss plus an L2 penalty."""
    dim = 1 << bits
    w = np.zeros(dim)
    b = 0.0
    mw, vw = np.zeros(dim), np.zeros(dim)
    mb = vb = 0.0
    lr, b1, b2 = 0.05, 0.9, 0.999
    total = sw.sum()
    for t in range(1, epochs + 1):
        z = logits(m, w, b)
        p = 1.0 / (1.0 + np.exp(-z))
        r = (p - y) * sw / total
        gw = np.bincount(m.idx, weights=r[m.row] * m.scale[m.row], minlength=dim) + l2 * w
        gb = float(r.sum())
        mw = b1 * mw + (1 - b1) * gw
        vw = b2 * vw + (1 - b2) * gw * gw
        mb = b1 * mb + (1 - b1) * gb
        vb = b2 * vb + (1 - b2) * gb * gb
        w -= lr * (mw / (1 - b1**t)) / (np.sqrt(vw / (1 - b2**t)) + 1e-8)
        b -= lr * (mb / (1 - b1**t)) / (np.sqrt(vb / (1 - b2**t)) + 1e-8)
    return w, b


CHAT_SOURCES = frozenset({"topicalchat", "synthetic_chat"})


def sample_weights(
    examples: list[Example], safe_weight: float, chat_weight: float
) -> NDArray[np.float64]:
    """Each (label, source) cell weighs the same in total, so 47k chat turns do
    not drown 200 written homonyms, and a label's sources share its part of the
    loss. The safe label weighs `safe_weight` times the unsafe one: benign text
    is the prior, so the bias leans safe and a text the model knows nothing
    about (few features it has weights for) scores well above the threshold.
    Chat cells weigh `chat_weight` times another safe cell: everyday words
    ("weird", "fight", "you're") must learn they are fine in a chat."""
    cells: dict[tuple[bool, str], int] = defaultdict(int)
    for e in examples:
        cells[(e.unsafe, e.source)] += 1
    per_label: dict[bool, int] = defaultdict(int)
    for unsafe, _ in cells:
        per_label[unsafe] += 1
    label = {True: 1.0, False: safe_weight}
    cell = np.array([chat_weight if e.source in CHAT_SOURCES else 1.0 for e in examples])
    return cell * np.array(
        [label[e.unsafe] / (cells[(e.unsafe, e.source)] * per_label[e.unsafe])
         for e in examples]
    )


def report(examples: list[Example], values: NDArray[np.float64], cut: float) -> None:
    by: dict[str, list[bool]] = defaultdict(list)
    for e, v in zip(examples, values, strict=True):
        by[("unsafe " if e.unsafe else "safe   ") + e.source].append(bool(v < cut))
    print(f"{'held-out cell':<40} {'n':>5} {'refused':>8}")
    for key in sorted(by):
        flags = by[key]
        print(f"{key:<40} {len(flags):>5} {sum(flags) / len(flags):>8.3f}")
    unsafe = [v < cut for e, v in zip(examples, values, strict=True) if e.unsafe]
    safe = [v < cut for e, v in zip(examples, values, strict=True) if not e.unsafe]
    wsafe = [v < cut for e, v in zip(examples, values, strict=True)
             if not e.unsafe and e.source.startswith("written")]
    print(f"unsafe refused {np.mean(unsafe):.3f} (n={len(unsafe)}); "
          f"safe refused {np.mean(safe):.3f} (n={len(safe)}); "
          f"safe-looking (written) refused {np.mean(wsafe):.3f} (n={len(wsafe)})")


DEV_PER_CELL = 20
# The checked-in dev set leaves out the CC BY-NC Alpaca prompts.
DEV_SOURCES_EXCLUDED = frozenset({"alpaca"})


def dev_sample(test_set: list[Example]) -> list[Example]:
    """Up to DEV_PER_CELL held-out examples per (label, source) cell, for eval's
    governance suite; they stay out of the final training too."""
    rng = random.Random(SEED)
    cells: dict[tuple[bool, str], list[Example]] = defaultdict(list)
    for e in test_set:
        if e.source not in DEV_SOURCES_EXCLUDED:
            cells[(e.unsafe, e.source)].append(e)
    out: list[Example] = []
    for key in sorted(cells):
        group = cells[key]
        out += rng.sample(group, min(DEV_PER_CELL, len(group)))
    return out


def write_dev(path: Path, dev: list[Example]) -> None:
    rows = [{"text": e.text, "unsafe": e.unsafe, "category": e.source} for e in dev]
    doc = {
        "description": (
            "Development prompts for `mlsdm-grpc eval --suite governance`: held out from "
            "the content scorer's training by engine/training/train_content_scorer.py."
        ),
        "licences": {
            "written:*": "written for mlsdm-grpc (Apache-2.0)",
            "advbench, advbench_strings": "AdvBench, llm-attacks/llm-attacks (MIT)",
            "harmbench, harmbench_targets": "HarmBench, centerforaisafety/HarmBench (MIT)",
            "gsm8k": "GSM8K, openai/grade-school-math (MIT)",
            "selfinstruct": "Self-Instruct, yizhongw/self-instruct (Apache-2.0)",
            "topicalchat": "Topical-Chat, alexa/Topical-Chat (CDLA-Sharing-1.0)",
            "synthetic_chat": "mlsdm/engine/data/conversations.json (written for mlsdm-grpc)",
        },
        "prompts": rows,
    }
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def fit(examples: list[Example], args: argparse.Namespace) -> ContentModel:
    started = time.perf_counter()
    m = featurise(examples, args.bits)
    y = np.array([1.0 if e.unsafe else 0.0 for e in examples])
    w, b = train(m, y, sample_weights(examples, args.safe_weight, args.chat_weight),
                   args.bits, args.l2, args.epochs)
    print(f"trained on {len(examples)} in {time.perf_counter() - started:.1f} s")
    # Scored as shipped: float16 weights.
    return ContentModel(w.astype(np.float16).astype(np.float32), b, args.bits)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--dev-out", type=Path, default=None, help="write the dev set here")
    ap.add_argument("--final", action="store_true",
                    help="after the held-out report, train on everything but the dev set")
    ap.add_argument("--bits", type=int, default=17)
    ap.add_argument("--l2", type=float, default=1e-6)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--cut", type=float, default=0.5, help="moral value refused below")
    ap.add_argument("--with-alpaca", action="store_true",
                    help="add the CC BY-NC Alpaca data (never for the shipped weights)")
    ap.add_argument("--safe-weight", type=float, default=2.0,
                    help="loss weight of the safe label relative to the unsafe one")
    ap.add_argument("--chat-weight", type=float, default=80.0,
                    help="weight of a chat cell relative to another safe cell")
    args = ap.parse_args()
    examples = load_public(args.data) + load_written()
    if args.with_alpaca:
        examples += load_alpaca(args.data)
    train_set, test_set = split(examples)
    print(f"examples {len(examples)}: train {len(train_set)}, held out {len(test_set)}")
    model = fit(train_set, args)
    report(test_set, np.array([model.score(e.text) for e in test_set]), args.cut)
    dev = dev_sample(test_set)
    if args.dev_out is not None:
        write_dev(args.dev_out, dev)
        print(f"wrote {args.dev_out} ({len(dev)} prompts)")
    if args.final:
        dev_texts = {e.text for e in dev}
        model = fit([e for e in examples if e.text not in dev_texts], args)
    if args.out is not None:
        model.save(args.out)
        print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
