"""Telegraphic-speech ("aphasia") detector for LLM output.

Three signals, each a flag when past its limit: short sentences, few function
words, many fragments. Severity is the mean of the normalised shortfalls, so a
response failing one signal badly scores lower than one failing all three.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_AVG_SENTENCE_LENGTH = 6.0
MIN_FUNCTION_WORD_RATIO = 0.15
MAX_FRAGMENT_RATIO = 0.5
FRAGMENT_WORDS = 4

# Articles, prepositions, auxiliaries, conjunctions and pronouns.
FUNCTION_WORDS: frozenset[str] = frozenset(
    {
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "with",
        "from",
        "by",
        "about",
        "as",
        "into",
        "onto",
        "over",
        "under",
        "after",
        "before",
        "between",
        "through",
        "during",
        "without",
        "within",
        "upon",
        "across",
        "behind",
        "beyond",
        "near",
        "off",
        "up",
        "is",
        "am",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "do",
        "does",
        "did",
        "have",
        "has",
        "had",
        "will",
        "would",
        "shall",
        "should",
        "can",
        "could",
        "may",
        "might",
        "must",
        "and",
        "or",
        "but",
        "nor",
        "so",
        "yet",
        "if",
        "because",
        "although",
        "though",
        "while",
        "when",
        "where",
        "whether",
        "than",
        "that",
        "which",
        "who",
        "whom",
        "whose",
        "what",
        "i",
        "you",
        "he",
        "she",
        "it",
        "we",
        "they",
        "me",
        "him",
        "her",
        "us",
        "them",
        "my",
        "your",
        "his",
        "its",
        "our",
        "their",
        "this",
        "these",
        "those",
        "there",
        "here",
    }
)

APHASIA_REPAIR_INSTRUCTION = (
    "Rewrite your previous answer in complete, grammatical sentences. Use full "
    "sentences with articles, prepositions and verbs; do not use fragments, lists "
    "of keywords or telegraphic style. Keep the same meaning."
)

_SENTENCE_SPLIT = re.compile(r"[.!?;]+|\n+")
_WORD = re.compile(r"[A-Za-z0-9']+")


@dataclass(frozen=True)
class AphasiaReport:
    is_aphasic: bool
    severity: float
    flags: tuple[str, ...]
    avg_sentence_length: float
    function_word_ratio: float
    fragment_ratio: float


def detect_aphasia(text: str) -> AphasiaReport:
    sentences = [_WORD.findall(s) for s in _SENTENCE_SPLIT.split(text)]
    sentences = [s for s in sentences if s]
    if not sentences:
        return AphasiaReport(True, 1.0, ("empty_response",), 0.0, 0.0, 1.0)
    total_words = sum(len(s) for s in sentences)
    avg_len = total_words / len(sentences)
    function_words = sum(1 for s in sentences for w in s if w.lower() in FUNCTION_WORDS)
    fw_ratio = function_words / total_words
    fragment_ratio = sum(1 for s in sentences if len(s) < FRAGMENT_WORDS) / len(sentences)

    flags: list[str] = []
    if avg_len < MIN_AVG_SENTENCE_LENGTH:
        flags.append("short_sentences")
    if fw_ratio < MIN_FUNCTION_WORD_RATIO:
        flags.append("low_function_words")
    if fragment_ratio > MAX_FRAGMENT_RATIO:
        flags.append("fragmented")
    shortfalls = (
        max(0.0, (MIN_AVG_SENTENCE_LENGTH - avg_len) / MIN_AVG_SENTENCE_LENGTH),
        max(0.0, (MIN_FUNCTION_WORD_RATIO - fw_ratio) / MIN_FUNCTION_WORD_RATIO),
        max(0.0, (fragment_ratio - MAX_FRAGMENT_RATIO) / MAX_FRAGMENT_RATIO),
    )
    severity = min(1.0, sum(shortfalls) / 3.0)
    return AphasiaReport(bool(flags), severity, tuple(flags), avg_len, fw_ratio, fragment_ratio)


def choose_less_aphasic(
    a_text: str, a_report: AphasiaReport, b_text: str, b_report: AphasiaReport
) -> tuple[str, AphasiaReport]:
    """Keep the lower-severity text; on a tie prefer the non-aphasic one, then ``a``."""
    if b_report.severity < a_report.severity:
        return b_text, b_report
    if b_report.severity == a_report.severity and a_report.is_aphasic and not b_report.is_aphasic:
        return b_text, b_report
    return a_text, a_report
