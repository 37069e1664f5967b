from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlsdm.engine import (
    APHASIA_REPAIR_INSTRUCTION,
    Embedder,
    HashingEmbedder,
    choose_less_aphasic,
    detect_aphasia,
    response_confidence,
)
from mlsdm.engine.confidence import _HEDGES, HEDGE_PHRASES

FLUENT = "The cat sat on the mat because it was tired after a long day in the garden."
TELEGRAPHIC = "Cat sat. Mat. Tired. Long day. Garden."


def test_fluent_text_is_not_aphasic() -> None:
    r = detect_aphasia(FLUENT)
    assert not r.is_aphasic and r.severity == 0.0 and r.flags == ()
    assert r.avg_sentence_length == 17 and r.fragment_ratio == 0.0


def test_telegraphic_text_is_aphasic_with_flags() -> None:
    r = detect_aphasia(TELEGRAPHIC)
    assert r.is_aphasic
    assert set(r.flags) == {"short_sentences", "low_function_words", "fragmented"}
    assert r.avg_sentence_length == pytest.approx(7 / 5)
    assert r.function_word_ratio == 0.0 and r.fragment_ratio == 1.0
    # shortfalls (6 - 1.4)/6, 1.0 and 1.0, averaged
    assert r.severity == pytest.approx(((6 - 1.4) / 6 + 2) / 3)


def test_empty_response_is_maximally_aphasic() -> None:
    r = detect_aphasia("  ...  ")
    assert r.is_aphasic and r.severity == 1.0 and r.flags == ("empty_response",)


def test_choose_less_aphasic() -> None:
    a, b = detect_aphasia(TELEGRAPHIC), detect_aphasia(FLUENT)
    assert choose_less_aphasic(TELEGRAPHIC, a, FLUENT, b) == (FLUENT, b)
    assert choose_less_aphasic(FLUENT, b, TELEGRAPHIC, a) == (FLUENT, b)
    assert choose_less_aphasic(FLUENT, b, FLUENT + " Again.", b)[0] == FLUENT
    flagged_zero = detect_aphasia("Word word word word word word word word.")  # no function words
    assert flagged_zero.is_aphasic
    text, _ = choose_less_aphasic("x", flagged_zero, "y", b)
    assert text == "y" or b.severity < flagged_zero.severity
    assert "complete" in APHASIA_REPAIR_INSTRUCTION


def test_tie_prefers_the_non_aphasic_text() -> None:
    clean = detect_aphasia(FLUENT)
    tied = type(clean)(True, clean.severity, ("fragmented",), 6.0, 0.2, 0.5)
    assert choose_less_aphasic("a", tied, "b", clean)[0] == "b"


def test_response_confidence_examples() -> None:
    assert response_confidence(FLUENT) == 1.0
    assert response_confidence("Yes.") == pytest.approx(0.8)
    hedged = "I think this is maybe right, but probably you should check the manual first."
    assert response_confidence(hedged) == pytest.approx(0.7)
    repeated = "spam " * 20
    # short? no (20 words); repetition 0.95 -> minus 0.285
    assert response_confidence(repeated) == pytest.approx(1 - 0.3 * 0.95)
    assert response_confidence("maybe " * 12) == 0.0
    # Empty or whitespace-only answers are never remembered.
    assert response_confidence("") == 0.0
    assert response_confidence(" \n\t ") == 0.0


# Text made of hedge phrases, their parts and neighbours, so phrases touch and nest.
_HEDGE_TEXT = st.lists(
    st.sampled_from([*HEDGE_PHRASES, "i", "i'm", "not", "be", "sure", "think", "x", " ", "."]),
    max_size=30,
).map(" ".join)


@given(st.one_of(_HEDGE_TEXT, st.text(max_size=200)))
def test_one_scan_counts_hedges_like_one_scan_per_phrase(text: str) -> None:
    lowered = text.lower()
    per_phrase = sum(
        len(re.findall(r"\b" + re.escape(phrase) + r"\b", lowered)) for phrase in HEDGE_PHRASES
    )
    assert len(_HEDGES.findall(lowered)) == per_phrase


def test_hashing_embedder_properties() -> None:
    emb = HashingEmbedder(384)
    assert isinstance(emb, Embedder)
    a = emb.embed("How do I reset my password?")
    b = emb.embed("how do i RESET my password")
    c = emb.embed("The weather in Paris is sunny today")
    assert a.dtype == np.float32 and a.shape == (384,)
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(a, b)  # case and punctuation do not matter
    assert float(a @ c) < 0.5 < float(a @ emb.embed("reset my password"))
    np.testing.assert_array_equal(a, HashingEmbedder(384).embed("How do I reset my password?"))


def test_embedder_handles_text_without_words() -> None:
    emb = HashingEmbedder(16)
    for text in ("", "!!!", "???"):
        v = emb.embed(text)
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError):
        HashingEmbedder(0)


def test_embedding_is_stable_across_processes() -> None:
    # Fixed expectation: blake2b, unlike hash(), is not salted per process.
    v = HashingEmbedder(8).embed("stable")
    np.testing.assert_array_equal(v, HashingEmbedder(8).embed("stable"))
    import subprocess
    import sys

    code = (
        "from mlsdm.engine import HashingEmbedder;"
        "print(HashingEmbedder(64).embed('a stable text').tobytes().hex())"
    )
    import os

    outs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
        ).stdout
        for _ in range(2)
    }
    assert outs == {HashingEmbedder(64).embed("a stable text").tobytes().hex() + "\n"}


def test_short_factual_replies_lists_and_code_are_not_aphasic() -> None:
    # Issue 29: "Paris, France." was flagged 3 times in 10; the fixture is the
    # corpus's short_answers (short factual replies, lists, code).
    from mlsdm.engine.evaluation import load_aphasia_corpus

    corpus = load_aphasia_corpus()
    flagged = [t for t in corpus["short_answers"] if detect_aphasia(t).is_aphasic]
    assert len(flagged) <= 0.05 * len(corpus["short_answers"]), flagged
    # Telegraphic texts, one-word fragments strung together included, stay flagged.
    assert all(detect_aphasia(t).is_aphasic for t in corpus["telegraphic"])
    assert detect_aphasia("Paris. Capital. France.").is_aphasic
