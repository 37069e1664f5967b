"""Telegraphic-speech ("aphasia") detector for LLM output.

Three signals, each a flag when past its limit: short sentences, few function
words, many fragments. Severity is the mean of the normalised shortfalls, so a
response failing one signal badly scores lower than one failing all three.

Only prose is judged: fenced and indented code blocks, markdown list items,
headings and table rows are set aside first (a reply that is only a list or
only code is not aphasic). A sentence is *complete* when it holds a function
word or consists of reply words ("yes", "thanks", "sure", ...); a short reply
(at most ``SHORT_REPLY_WORDS`` words) whose sentences are all complete is not
aphasic ("Yes. I agree. Thank you."), nor is a one-sentence answer of at most
``SINGLE_ANSWER_WORDS`` words ("Paris, France."), and only incomplete short
sentences count as fragments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_AVG_SENTENCE_LENGTH = 6.0
MIN_FUNCTION_WORD_RATIO = 0.15
MAX_FRAGMENT_RATIO = 0.5
FRAGMENT_WORDS = 4
SHORT_REPLY_WORDS = 12
# One sentence of at most this many words is an answer ("Paris, France.",
# "About 8,849 metres.", "Use `ls -la`."), not telegraphic speech, which
# strings several fragments together ("Paris. Capital. France.").
SINGLE_ANSWER_WORDS = 6

# Words that make a complete reply on their own.
REPLY_WORDS: frozenset[str] = frozenset(
    [
        "yes",
        "no",
        "ok",
        "okay",
        "sure",
        "thanks",
        "thank",
        "please",
        "hello",
        "hi",
        "hey",
        "sorry",
        "great",
        "good",
        "fine",
        "done",
        "right",
        "agreed",
        "certainly",
        "absolutely",
        "indeed",
        "exactly",
        "correct",
        "welcome",
        "bye",
        "goodbye",
        "morning",
        "evening",
        "night",
        "congratulations",
        "wow",
        "oh",
        "ah",
    ]
)

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
    "Rewrite the draft answer below in complete, grammatical sentences. Use full "
    "sentences with articles, prepositions and verbs; do not use fragments, lists "
    "of keywords or telegraphic style. Keep the same meaning and the facts it uses."
)

_SENTENCE_SPLIT = re.compile(r"[.!?;]+(?:\s|$)|\n+")
_WORD = re.compile(r"[A-Za-z0-9']+")
_FENCE = re.compile(r"^\s*(```|~~~)")
# Indented code, list items, headings, table rows, and a lead-in line ("Options:").
_NOT_PROSE = re.compile(r"^(\s{4,}|\t)\S|^\s*([-*+\u2022]\s|\d+[.)]\s|#{1,6}\s|\|)|.*:\s*$")


@dataclass(frozen=True)
class AphasiaReport:
    is_aphasic: bool
    severity: float
    flags: tuple[str, ...]
    avg_sentence_length: float
    function_word_ratio: float
    fragment_ratio: float


def prose_of(text: str) -> str:
    """The text without code blocks, list items, headings and table rows."""
    kept: list[str] = []
    in_code = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_code = not in_code
            continue
        if in_code or _NOT_PROSE.match(line):
            continue
        kept.append(line)
    return "\n".join(kept)


def _complete(words: list[str]) -> bool:
    lowered = [w.lower() for w in words]
    return any(w in FUNCTION_WORDS for w in lowered) or all(w in REPLY_WORDS for w in lowered)


_CLEAN = AphasiaReport(False, 0.0, (), 0.0, 0.0, 0.0)


def detect_aphasia(text: str) -> AphasiaReport:
    if not _WORD.search(text):
        return AphasiaReport(True, 1.0, ("empty_response",), 0.0, 0.0, 1.0)
    sentences = [_WORD.findall(s) for s in _SENTENCE_SPLIT.split(prose_of(text))]
    sentences = [s for s in sentences if s]
    if not sentences:
        return _CLEAN  # only code, lists or headings: nothing to judge as prose
    total_words = sum(len(s) for s in sentences)
    if len(sentences) == 1 and total_words <= SINGLE_ANSWER_WORDS:
        return _CLEAN  # a short answer
    complete = [_complete(s) for s in sentences]
    function_words = sum(1 for s in sentences for w in s if w.lower() in FUNCTION_WORDS)
    fw_ratio = function_words / total_words
    if total_words <= SHORT_REPLY_WORDS and (
        all(complete)
        or (2 * sum(complete) >= len(complete) and fw_ratio >= MIN_FUNCTION_WORD_RATIO)
    ):
        return _CLEAN  # a short complete reply
    avg_len = total_words / len(sentences)
    fragments = sum(
        1 for s, c in zip(sentences, complete, strict=True) if len(s) < FRAGMENT_WORDS and not c
    )
    fragment_ratio = fragments / len(sentences)

    flags: list[str] = []
    if avg_len < MIN_AVG_SENTENCE_LENGTH and not all(complete):
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
    severity = min(1.0, sum(shortfalls) / 3.0) if flags else 0.0
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
