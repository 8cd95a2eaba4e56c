import random

import pytest

from reinforge.graders import from_spec
from reinforge.graders.base import make_sample
from reinforge.graders.text_similarity import METRICS, word_tokens
from tests.graders.fake_openai import FakeOpenAI
from tests.graders.openai_examples import TEXT_SIMILARITY

WORDS = "the a cat dog sat ran on mat quick brown fox jumps over lazy runs running cats dogs , . !".split()


def random_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    sentence = lambda: " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 14)))  # noqa: E731
    return [(sentence(), sentence()) for _ in range(n)]


def reference_value(metric: str, hyp: str, ref: str) -> float:
    """The number straight from the reference library, computed independently of the grader."""
    if metric == "fuzzy_match":
        from rapidfuzz import fuzz, utils

        return fuzz.WRatio(hyp, ref, processor=utils.default_process) / 100
    if metric == "bleu":
        import sacrebleu

        return sacrebleu.sentence_bleu(hyp, [ref]).score / 100
    if metric == "gleu":
        from nltk.translate.gleu_score import sentence_gleu

        return sentence_gleu([word_tokens(ref)], word_tokens(hyp))
    if metric == "meteor":
        from nltk.translate.meteor_score import meteor_score

        class NoWordNet:
            def synsets(self, *a, **k):
                return []

        return meteor_score([word_tokens(ref)], word_tokens(hyp), wordnet=NoWordNet())
    from rouge_score import rouge_scorer

    kind = "rougeL" if metric == "rouge_l" else "rouge" + metric[-1]
    return rouge_scorer.RougeScorer([kind]).score(ref, hyp)[kind].fmeasure


@pytest.mark.parametrize("metric", [m for m in METRICS if m != "cosine"])
def test_matches_reference_library_on_random_strings(metric):
    pairs = random_pairs(60, seed=hash(metric) % 1000)
    g = from_spec({**TEXT_SIMILARITY, "evaluation_metric": metric})
    grades = g.grade_batch([({"reference_answer": ref}, make_sample(hyp)) for hyp, ref in pairs])
    for (hyp, ref), grade in zip(pairs, grades):
        assert grade.ok, grade.errors
        assert grade.reward == pytest.approx(reference_value(metric, hyp, ref), abs=1e-6), (hyp, ref)


@pytest.mark.parametrize("metric", [m for m in METRICS if m != "cosine"])
def test_identical_texts_score_one_and_disjoint_low(metric):
    g = from_spec({**TEXT_SIMILARITY, "evaluation_metric": metric})
    text = "the quick brown fox jumps over the lazy dog"
    assert g.grade({"reference_answer": text}, make_sample(text)).reward == pytest.approx(1.0, abs=1e-3)
    assert g.grade({"reference_answer": text}, make_sample("888 999")).reward < 0.2


def test_openai_example_fuzzy_match_and_pass_threshold():
    g = from_spec({**TEXT_SIMILARITY, "pass_threshold": 0.8})
    good = g.grade({"reference_answer": "fuzzy wuzzy was a bear"}, make_sample("Fuzzy wuzzy was a bear!"))
    bad = g.grade({"reference_answer": "fuzzy wuzzy was a bear"}, make_sample("completely different"))
    assert good.reward == pytest.approx(1.0) and good.metadata["passed"] is True
    assert bad.reward < 0.5 and bad.metadata["passed"] is False


def test_meteor_states_its_limit():
    g = from_spec({**TEXT_SIMILARITY, "evaluation_metric": "meteor"})
    assert "WordNet" in g.grade({"reference_answer": "a"}, make_sample("a")).metadata["note"]


def test_cosine_minilm_matches_sentence_transformers():
    import numpy as np

    from reinforge.graders.text_similarity import _sentence_model, minilm_path

    pairs = [("a cat sat on the mat", "a cat was sitting on the mat"), ("stock prices fell", "I like pizza")]
    g = from_spec({**TEXT_SIMILARITY, "evaluation_metric": "cosine"})
    grades = g.grade_batch([({"reference_answer": r}, make_sample(h)) for h, r in pairs])
    model = _sentence_model(minilm_path())  # the same loaded weights; the encoding below is independent
    for (h, r), grade in zip(pairs, grades):
        a, b = model.encode([h, r], normalize_embeddings=True)
        assert grade.reward == pytest.approx(float(np.dot(a, b)), abs=1e-5)
    assert grades[0].reward > 0.7 > 0.2 > grades[1].reward


def test_cosine_through_an_embeddings_endpoint():
    with FakeOpenAI() as server:
        spec = {
            **TEXT_SIMILARITY,
            "evaluation_metric": "cosine",
            "base_url": server.base_url,
            "embedding_model": "fake-embed",
        }
        g = from_spec(spec)
        same = g.grade({"reference_answer": "banana"}, make_sample("banana"))
        other = g.grade({"reference_answer": "banana"}, make_sample("xyz"))
        assert same.reward == pytest.approx(1.0)
        assert other.reward < 0.99
        assert all(r["path"].endswith("/embeddings") for r in server.requests)


def test_process_pool_path_matches_in_process(monkeypatch):
    import reinforge.graders.text_similarity as ts

    pairs = random_pairs(40, seed=7)
    expected = ts.score_chunk("rouge_2", pairs)
    monkeypatch.setattr(ts, "PARALLEL_MIN_ROWS", 10)
    monkeypatch.setattr(ts.os, "cpu_count", lambda: 2)
    assert ts.score_pairs("rouge_2", pairs) == expected
