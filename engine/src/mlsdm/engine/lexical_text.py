"""Terms for the lexical index: what a memory's text and a query are matched on.

Both sides go through the same analysis, so a question meets the turn it asks
about: lowercase words (letters and digits; a possessive "'s" dropped, other
apostrophes (straight or typographic) closed up, so "Caroline's" meets "Caroline" and "don't" is one
word), the engine's light stemmer (``text_features.stem``: "painted" meets
"painting"), and the stop-word list of the default embedder (function words,
question words, the commonest verbs). Stop-words are not indexed: a query never
looks them up (BM25 would give them almost no weight anyway), so leaving them
out makes the index smaller and a query cheaper. A text whose every word is a
stop-word is indexed on those words, so it can still be found by them.

Measured on the development set (bench/memory_eval.py): stemming and the
stop-words each add recall@10 over a lowercase whitespace split.
"""

from __future__ import annotations

from collections import Counter

from .text_features import STOP_WORDS, stem, tokens


def terms(text: str, use_stems: bool = True) -> list[str]:
    """Index terms of ``text`` in order (repeats kept; see the module docstring)."""
    words = tokens(text.replace("\u2019", "'"))
    kept = [w for w in words if w not in STOP_WORDS] or words
    return [stem(w) for w in kept] if use_stems else kept


def term_counts(text: str, use_stems: bool = True) -> Counter[str]:
    return Counter(terms(text, use_stems))
