"""Benign conversational text for the content scorer's safe side.

Why: the instruction sets (GSM8K, Self-Instruct) taught the scorer what a
harmless *request* looks like, but not what people say to each other, so short
chit-chat ("I am good and you?") scored near the unsafe side and Remember
refused a third of a real chat. These loaders add everyday chat turns, each
also written the way MemoryService stores a turn ("Speaker: words"), with the
split unit a whole conversation so held-out numbers measure unseen chats.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

# Speaker names for the "Speaker: words" form: written for this project, from
# many languages, so no name leans either way.
NAMES = (
    "Maya", "Tom", "Aisha", "Kenji", "Lucia", "Omar", "Priya", "Sven", "Chloe", "Diego",
    "Fatima", "Liam", "Mei", "Noah", "Olga", "Rahul", "Sara", "Tariq", "Yuki", "Zoe",
    "Ahmed Khan", "Emma Brown", "Jose Garcia", "Nguyen Van An", "Ama Mensah", "Ivan",
    "Leila", "Marco", "Nadia", "Pedro", "Quinn", "Rosa", "Samir", "Tanya", "Umar",
    "Vera", "Wei", "Xavier", "Yasmin", "Zainab", "user", "assistant", "friend",
)
SPEAKER_FORM_SHARE = 0.5


def _with_speaker(text: str, rng: random.Random) -> str:
    if rng.random() < SPEAKER_FORM_SHARE:
        return f"{rng.choice(NAMES)}: {text}"
    return text


def topical_chat(data: Path, seed: int) -> Iterator[tuple[str, str]]:
    """(conversation id, turn) from Topical-Chat's released validation and test
    files (alexa/Topical-Chat conversations/*.json, CDLA-Sharing-1.0)."""
    rng = random.Random(seed)
    for path in sorted(data.glob("topicalchat_*.json")):
        for conv_id, conv in json.loads(path.read_text(encoding="utf-8")).items():
            for turn in conv["content"]:
                message = str(turn["message"]).strip()
                if message:
                    yield conv_id, _with_speaker(message, rng)


def synthetic_chats(path: Path) -> Iterator[tuple[str, str]]:
    """(conversation name, "Speaker: turn") from the project's own synthetic
    conversations (mlsdm/engine/data/conversations.json)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    for conv in doc["conversations"]:
        for turn in conv["turns"]:
            yield conv["name"], turn["text"]
            yield conv["name"], f"{turn['speaker']}: {turn['text']}"
