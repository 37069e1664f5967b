"""Word features for the default embedder: tokens, stop-words, a light stemmer.

The stemmer strips a few English inflections ("moved" and "moves" both become
"mov", "parties" becomes "party") so that a question and the fact it asks about
meet on the same features; it is deliberately small and never produces a stem
shorter than three letters.
"""

from __future__ import annotations

import re
from functools import lru_cache

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

# Function words and the commonest verbs and adverbs: they say little about
# what a memory is about, and in a short text they would dominate its vector.
STOP_WORDS: frozenset[str] = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "done",
        "down",
        "during",
        "each",
        "else",
        "ever",
        "every",
        "few",
        "for",
        "from",
        "further",
        "get",
        "gets",
        "got",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "let",
        "me",
        "more",
        "most",
        "much",
        "must",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "please",
        "same",
        "shall",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "upon",
        "us",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "whose",
        "why",
        "will",
        "with",
        "within",
        "would",
        "yes",
        "yet",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "tell",
        "told",
        "know",
        "say",
        "said",
        "thing",
        "things",
        "really",
        "thanks",
        "thank",
        "okay",
        "ok",
    ]
)

_SUFFIXES = ("ingly", "edly", "ings", "ing", "ed", "ly")


def tokens(text: str) -> list[str]:
    """Lowercase words, possessive "'s" dropped."""
    out = []
    for word in _WORD.findall(text.lower()):
        if word.endswith("'s"):
            word = word[:-2]
        out.append(word.replace("'", ""))
    return [w for w in out if w]


# Words repeat across texts: a restored 20,000-memory tenant stems ~160,000
# words to rebuild its lexical index, most of them seen before. Bounded and
# shared by the process; the stem of a word never changes.
@lru_cache(maxsize=32_768)
def stem(word: str) -> str:
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]  # "stopp" -> "stop"
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]  # "move" -> "mov", so it meets "moved"
    return word


def content_stems(text: str) -> list[str]:
    """Stems of the words that are not stop-words; all stems when every word is one."""
    words = tokens(text)
    kept = [w for w in words if w not in STOP_WORDS]
    return [stem(w) for w in (kept or words)]
