"""NLI backend plumbing with a tiny ONNX model built here, whose output we control.

No NLI weights ship in any package on this machine, so the model is a bag-of-words: each token
adds a fixed logit row (``alpha`` → entailment, ``beta`` → contradiction, anything else → 0),
summed under the attention mask. Labels are in cross-encoder order (contradiction, entailment,
neutral) and upper case, to check the label mapping.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("CI", "").lower() == "true":  # CI=true: the ONNX tests must run, not skip
    import onnx
else:
    onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors  # noqa: E402

from sluice.errors import ConfigError  # noqa: E402
from sluice.evals import Groundedness, build  # noqa: E402
from sluice.evals.backends.nli import NLIModel  # noqa: E402

VOCAB = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "alpha": 4, "beta": 5}
CONTRA, ENTAIL, NEUTRAL = 0, 1, 2


def _build(folder: Path) -> Path:
    weights = np.zeros((len(VOCAB), 3), dtype=np.float32)
    weights[VOCAB["alpha"], ENTAIL] = 5.0
    weights[VOCAB["beta"], CONTRA] = 5.0
    nodes = [
        helper.make_node("Gather", ["W", "input_ids"], ["emb"], axis=0),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["emb", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["logits"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "bag_nli",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 3])],
        initializer=[numpy_helper.from_array(weights, "W"),
                     numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
                     numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder.mkdir()
    onnx.save(model, str(folder / "model.onnx"))
    tok = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "config.json").write_text(json.dumps(
        {"id2label": {"0": "CONTRADICTION", "1": "ENTAILMENT", "2": "NEUTRAL"}}))
    return folder


@pytest.fixture(scope="module")
def nli_folder(tmp_path_factory) -> Path:
    return _build(tmp_path_factory.mktemp("nli") / "bag-nli")


def test_label_mapping_and_probabilities(nli_folder: Path) -> None:
    model = NLIModel(nli_folder)
    p = model.predict([("the sky", "alpha claim"), ("the sky", "beta claim"),
                       ("the sky", "plain claim"), ("alpha", "alpha")])
    e5 = math.exp(5)
    assert p[0]["entailment"] == pytest.approx(e5 / (e5 + 2), rel=1e-5)
    assert p[1]["contradiction"] == pytest.approx(e5 / (e5 + 2), rel=1e-5)
    assert p[2] == pytest.approx({"entailment": 1 / 3, "contradiction": 1 / 3, "neutral": 1 / 3})
    assert p[3]["entailment"] == pytest.approx(math.exp(10) / (math.exp(10) + 2), rel=1e-5)


def test_groundedness_aggregates_claims_over_documents(nli_folder: Path) -> None:
    g = Groundedness(backend="nli", nli_model=str(nli_folder), require_facts=False)
    response = "alpha claim one\nbeta claim two\nplain claim three"
    r = g.evaluate(response=response, context=["sky doc", "sea doc"])
    assert r.score == pytest.approx(1 / 3) and not r.passed
    claims = r.details["claims"]
    assert [c["supported"] for c in claims] == [True, False, False]
    assert claims[1]["missing"]["contradiction"] and "missing" not in claims[0]
    # Support is the best document: a premise holding "alpha" lifts every claim's entailment;
    # for the "beta" claim it ties with contradiction (e^5 / (2e^5 + 1) < 0.5), so stays out.
    r2 = g.evaluate(response=response, context=["sky doc", "alpha doc"])
    assert [c["supported"] for c in r2.details["claims"]] == [True, False, True]
    assert r2.details["claims"][1]["support"] == pytest.approx(
        math.exp(5) / (2 * math.exp(5) + 1), abs=1e-4)
    assert r2.details["claims"][2]["evidence"] == "alpha doc"
    # The batch path (all pairs predicted at once) gives the same results.
    batch = g.evaluate_batch([{"response": response, "context": ["sky doc", "sea doc"]},
                              {"response": response, "context": ["sky doc", "alpha doc"]}])
    assert batch == [r, r2]


def test_bad_folders_are_config_errors(tmp_path: Path, nli_folder: Path) -> None:
    with pytest.raises(ConfigError, match="nli backend needs nli_model"):
        build({"name": "groundedness", "backend": "nli"})
    with pytest.raises(ConfigError, match="does not exist"):
        build({"name": "groundedness", "backend": "nli", "nli_model": str(tmp_path / "nope")})
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ("model.onnx", "tokenizer.json"):
        (broken / f).write_bytes((nli_folder / f).read_bytes())
    (broken / "config.json").write_text('{"id2label": {"0": "LABEL_0", "1": "LABEL_1"}}')
    with pytest.raises(ConfigError, match="id2label"):
        build({"name": "groundedness", "backend": "nli", "nli_model": str(broken)})
