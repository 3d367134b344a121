"""Dense features the text classifier adds to its character n-grams: what a city already
has besides labelled orders.

* **Lexicon** (``Lexicon``): the category tree's own words. Each category's sub-category
  names (``taxonomy.csv``: 城乡建设 / 物业管理 / 物业服务...), split at 、和及与 and into jieba
  words of two or more characters; a term shared by two categories says nothing and is
  dropped. A text gets one feature per category: log(1 + how many of the category's terms
  it mentions). The SVM learns how far to trust it; it helps most where the labelled
  orders never used a word the tree has (+1.1 points of macro-F1 on the TeddyCup folds).
* **Word vectors** (``WordVectors``): learnt from the city's unlabelled messages, with no
  model downloaded. Positive pointwise mutual information of words within 5 words of
  each other (weighted 1/distance, context counts smoothed by the 0.75 power), reduced
  by truncated SVD to 100 dimensions (Levy and Goldberg's counting counterpart of
  word2vec: deterministic, seconds on two cores, scikit-learn and SciPy only). A text's
  vector is the IDF-weighted mean of its words' vectors, unit length: words the labelled
  orders never used still land near the ones they did (+0.8 points on top of the lexicon).

Measured in ``bench/dispatch.py``; what was tried beside them is in ``docs/dispatch.md``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd

from zhengshu.modules.hotline.dispatch.text import segment

# Sub-category names are split here before they are cut into words.
_NAME_PARTS = re.compile(r"[、和及与/（）()，,\s]+")
MIN_TERM = 2  # characters: single characters are too common to say anything

WINDOW = 5  # words either side that count as context
DIMENSIONS = 100
CONTEXT_SMOOTHING = 0.75
MIN_COUNT = 2  # a word seen once has no reliable vector
MIN_DOCUMENTS = 500  # fewer unlabelled texts than this: no vectors (too little to learn)


@dataclass(frozen=True)
class Lexicon:
    """Per label, the terms that speak for it (each term for one label only)."""

    labels: list[str]
    terms: list[list[str]]  # parallel to labels

    @classmethod
    def from_tree(cls, tree: Mapping[str, Iterable[str]], labels: Sequence[str]) -> Lexicon:
        """``tree``: label -> names under it (sub-categories at any level). Only the
        ``labels`` the model learns are kept, in their order."""
        found: dict[str, set[str]] = {label: set() for label in labels}
        for label, names in tree.items():
            if label not in found:
                continue
            for name in names:
                for part in _NAME_PARTS.split(name):
                    if len(part) >= MIN_TERM:
                        found[label].add(part)
                    found[label].update(w for w in segment(part) if len(w) >= MIN_TERM)
        owners = Counter(term for terms in found.values() for term in terms)
        return cls(
            list(labels),
            [sorted(t for t in found[label] if owners[t] == 1) for label in labels],
        )

    @property
    def size(self) -> int:
        return len(self.labels)

    def row(self, text: str) -> np.ndarray:
        counts = np.array([sum(term in text for term in terms) for terms in self.terms], float)
        found: np.ndarray = np.log1p(counts)
        return found

    def mentioned(self, text: str, label: str) -> list[str]:
        """The terms of ``label`` that ``text`` mentions (longest first)."""
        if label not in self.labels:
            return []
        terms = self.terms[self.labels.index(label)]
        return sorted((t for t in terms if t in text), key=len, reverse=True)

    def to_state(self) -> dict[str, Any]:
        return {"labels": self.labels, "terms": self.terms}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Lexicon:
        return cls(list(state["labels"]), [list(t) for t in state["terms"]])


def tree_from_rows(rows: Iterable[Sequence[str]]) -> dict[str, list[str]]:
    """A category tree from rows of (first level, second level, third level...), as in
    ``taxonomy.csv``: first level -> the names below it."""
    tree: dict[str, list[str]] = {}
    for row in rows:
        cells = [c.strip() for c in row]
        if cells and cells[0]:
            tree.setdefault(cells[0], []).extend(c for c in cells[1:] if c)
    return tree


@dataclass(frozen=True)
class WordVectors:
    """Word -> vector (already weighted by the word's IDF), for a text's mean vector."""

    vocabulary: dict[str, int]
    # (words, dimensions), rows pre-multiplied by IDF, stored as int8 with a scale per row
    # (a quarter of float32's size; the mean of a text's vectors does not feel it).
    vectors: np.ndarray  # int8
    scales: np.ndarray  # float32, one per word

    @classmethod
    def fit(cls, documents: Sequence[Sequence[str]], *, seed: int = 0) -> WordVectors | None:
        """Vectors from segmented ``documents``; None when there are too few to learn."""
        if len(documents) < MIN_DOCUMENTS:
            return None
        counts = Counter(w for doc in documents for w in doc)
        words = sorted(w for w, c in counts.items() if c >= MIN_COUNT)
        index = {w: i for i, w in enumerate(words)}
        n = len(words)
        if n < 3:
            return None
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        weights: list[np.ndarray] = []
        for doc in documents:
            ids = np.array([index.get(w, -1) for w in doc], dtype=np.int64)
            for distance in range(1, WINDOW + 1):
                left, right = ids[:-distance], ids[distance:]
                keep = (left >= 0) & (right >= 0)
                if keep.any():
                    a, b = left[keep], right[keep]
                    rows += [a, b]
                    cols += [b, a]
                    weights.append(np.full(2 * len(a), 1.0 / distance))
        if not rows:
            return None
        cooc = sp.csr_matrix(
            (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n, n),
        )
        cooc.sum_duplicates()
        total = cooc.sum()
        word_p = np.asarray(cooc.sum(axis=1)).ravel() / total
        context = np.asarray(cooc.sum(axis=0)).ravel() ** CONTEXT_SMOOTHING
        context_p = context / context.sum()
        coo = cooc.tocoo()
        pmi = np.log(coo.data / total / word_p[coo.row] / context_p[coo.col])
        positive = pmi > 0
        ppmi = sp.csr_matrix((pmi[positive], (coo.row[positive], coo.col[positive])), shape=(n, n))
        u, s, _ = randomized_svd(ppmi, min(DIMENSIONS, n - 1), random_state=seed)
        document_freq = Counter(w for doc in documents for w in set(doc) if w in index)
        idf = np.log(len(documents) / (1.0 + np.array([document_freq[w] for w in words])))
        vectors = (u * np.sqrt(s)) * idf[:, None]
        scales = np.abs(vectors).max(axis=1) / 127.0
        scales[scales == 0] = 1.0
        quantized = np.rint(vectors / scales[:, None]).astype(np.int8)
        return cls(index, quantized, scales.astype(np.float32))

    @property
    def size(self) -> int:
        return int(self.vectors.shape[1])

    def row(self, words: Iterable[str]) -> np.ndarray:
        ids = [i for w in words if (i := self.vocabulary.get(w)) is not None]
        if not ids:
            return np.zeros(self.size)
        rows = self.vectors[ids].astype(np.float64) * self.scales[ids, None]
        mean: np.ndarray = rows.mean(axis=0)
        norm = float(np.linalg.norm(mean))
        return mean / norm if norm > 0 else mean

    def to_state(self) -> dict[str, Any]:
        words = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        return {"words": words, "vectors": self.vectors, "scales": self.scales}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> WordVectors:
        words = [str(w) for w in state["words"]]
        return cls(
            {w: i for i, w in enumerate(words)},
            np.asarray(state["vectors"]),
            np.asarray(state["scales"]),
        )
