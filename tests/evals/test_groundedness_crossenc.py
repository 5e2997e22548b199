"""The groundedness cross-encoder backend: input building, reasons, and labelled accuracy.

Accuracy bounds sit a little under what was measured (bench/results/groundedness.md), so a
change that makes the model less accurate fails here. Sets: HaluEval held-out questions and
their rewrites (never trained on), SummEdits news and scitldr (domains never trained on), and
HaluEval dev from ../shared when it is there.
"""

from __future__ import annotations

import pytest

from groundedness_sets import halueval_dev, load_set
from sluice.errors import ConfigError
from sluice.evals import Groundedness
from sluice.evals.backends import crossenc
from sluice.evals.backends.crossenc import MAX_TOKENS, encode_pair, first_segment, \
    make_tokenizer, select_sentences


needs_model = pytest.mark.skipif(not crossenc.model_available(),
                                 reason="onnxruntime/tokenizers or the model file missing")

DOC = ("The library opens at 9 am on weekdays. Parking is free for visitors. "
       "Marie Curie founded the Radium Institute in Paris in 1909. "
       "The cafeteria serves lunch from noon.")


def test_selection_puts_the_sentence_sharing_rare_words_first() -> None:
    got = select_sentences("Curie founded the institute in 1909.", None, [DOC])
    assert got[0].startswith("Marie Curie founded")
    assert len(got) == 4  # a short context is read whole, best first


def test_selection_uses_the_question_when_the_claim_is_a_bare_span() -> None:
    got = select_sentences("Paris", "Where did Marie Curie found the Radium Institute?", [DOC])
    assert got[0].startswith("Marie Curie founded")


def test_selection_keeps_top_sentences_of_a_long_document() -> None:
    filler = " ".join(f"Sentence {i} talks about weather number {i}." for i in range(200))
    got = select_sentences("Curie founded the Radium Institute.", None, [filler, DOC], top=3)
    assert len(got) == 3 and got[0].startswith("Marie Curie founded")


def test_selection_of_an_empty_context() -> None:
    assert select_sentences("Anything.", None, ["", "  "]) == []


def test_first_segment_names_question_and_claim() -> None:
    assert first_segment("Paris.", "Where?") == "question: Where? claim: Paris."
    assert first_segment("Paris.", None) == "claim: Paris."


def test_inputs_are_truncated_to_max_tokens() -> None:
    # Four sentences of ~60 words each are chosen: more than the model reads.
    long_doc = " ".join("Word7 is mentioned " + " ".join(f"filler{i}x{j}" for j in range(60)) + "."
                        for i in range(4))
    a, b = encode_pair("Word7 is mentioned.", "What is mentioned?", [long_doc])
    enc = make_tokenizer().encode(a, b)
    assert len(enc.ids) == MAX_TOKENS
    # The claim is kept whole; the context is cut.
    assert "word7" in make_tokenizer().decode(enc.ids[:20])


def test_missing_model_is_a_config_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(crossenc, "MODEL_PATH", tmp_path / "absent.onnx")
    monkeypatch.setattr(crossenc, "_model", None)
    with pytest.raises(ConfigError, match="weights not found"):
        Groundedness(backend="crossencoder")


@needs_model
def test_reason_names_the_claim_and_the_missing_fact() -> None:
    ev = Groundedness(backend="crossencoder")
    r = ev.evaluate(**{"response": "Curie founded the Radium Institute in 1911.",
                     "context": [DOC]})
    assert not r.passed
    assert "'Curie founded the Radium Institute in 1911.'" in r.reason
    assert "number: 1911" in r.reason


@needs_model
def test_supported_claim_passes_and_shows_its_evidence() -> None:
    ev = Groundedness(backend="crossencoder")
    r = ev.evaluate(**{"response": "Marie Curie founded the Radium Institute in Paris in 1909.",
                     "context": [DOC]})
    assert r.passed, r.reason
    assert r.details["claims"][0]["evidence"].startswith("Marie Curie founded")


@needs_model
def test_model_rejection_without_missing_fact_still_says_why() -> None:
    ev = Groundedness(backend="crossencoder", min_support=1.01)  # every claim rejected
    r = ev.evaluate(**{"response": "Parking is free for visitors.", "context": [DOC]})
    assert not r.passed
    assert "unsupported: 'Parking is free for visitors.' (not what the context says" in r.reason


# --- labelled accuracy ------------------------------------------------------------------------

def _measure(rows: list[dict]) -> tuple[float, float]:
    res = Groundedness(backend="crossencoder").evaluate_batch(
        [{"response": r["response"], "context": r["context"], "query": r["query"]} for r in rows])
    assert all(r.error is None for r in res)
    pos = [r.passed for r, x in zip(res, rows) if x["label"] == 1]
    neg = [not r.passed for r, x in zip(res, rows) if x["label"] == 0]
    kept, caught = sum(pos) / len(pos), sum(neg) / len(neg)
    return (kept + caught) / 2, kept


# Bounds: a little under the figures in bench/results/groundedness.md.
# Measured: held-out 0.955 (kept 0.94), rewrites 0.604 (0.59), news 0.535 (0.21),
# scitldr 0.592 (0.71), dev 0.959 (0.97).
LABELLED = {"halueval_heldout": (0.93, 0.90), "halueval_heldout_augmented": (0.57, 0.54),
            "summedits_news": (0.51, 0.15), "summedits_scitldr": (0.56, 0.65)}


@needs_model
@pytest.mark.parametrize("name", sorted(LABELLED))
def test_labelled_held_out(name: str) -> None:
    bal, kept = _measure(load_set(name))
    want_bal, want_kept = LABELLED[name]
    assert bal >= want_bal and kept >= want_kept, (bal, kept)


@needs_model
def test_labelled_halueval_dev() -> None:
    bal, kept = _measure(halueval_dev())
    assert bal >= 0.94 and kept >= 0.95, (bal, kept)
