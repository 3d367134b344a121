"""Category of an order: TextClassifier vs. the plain baseline, same stratified folds.

Data: the TeddyCup 2020 C messages in ``../shared/data/teddy2020c/`` (beside the repo):
``train.csv`` (labelled), and when present ``taxonomy.csv`` (the category tree: lexicon
features) and ``messages_votes.csv`` / ``messages_replies.csv`` (unlabelled: word vectors;
self-training only with ``--self-training``). The test fold's texts are in none of them.
Baseline: character 1-2-gram TF-IDF + LinearSVC, on the same folds.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.svm import LinearSVC

from zhengshu.modules.hotline.dispatch.classifier import (
    TextClassifier,
    evaluate,
    read_labelled_csv,
    read_tree_csv,
    read_unlabelled_csv,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "teddy2020c" / "train.csv"
UNLABELLED = ("messages_votes.csv", "messages_replies.csv")
TREE = "taxonomy.csv"
SEED = 0


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 10
) -> float:
    """Weighted mean gap between confidence and accuracy over equal-width bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    gap = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            gap += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(gap)


def baseline() -> Pipeline:
    return make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 2)), LinearSVC())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=SEED, help="of the folds")
    parser.add_argument(
        "--self-training",
        action="store_true",
        help="ours with self-training on the unlabelled messages too (off, as in the CLI)",
    )
    parser.add_argument("--no-unlabelled", action="store_true", help="ours without word vectors")
    parser.add_argument("--no-tree", action="store_true", help="ours without the lexicon")
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"skipped: data absent ({args.data})")
        return
    texts, labels = read_labelled_csv(args.data)
    unlabelled: list[str] = []
    if not args.no_unlabelled:
        for name in UNLABELLED:
            if (args.data.parent / name).is_file():
                unlabelled.extend(read_unlabelled_csv(args.data.parent / name))
    tree_file = args.data.parent / TREE
    tree = read_tree_csv(tree_file) if tree_file.is_file() and not args.no_tree else None
    y = np.array(labels)
    print(
        f"data: {args.data.name}, {len(texts)} labelled, {len(set(labels))} classes; "
        f"{len(unlabelled)} unlabelled; category tree: {tree_file.name if tree else 'none'}; "
        f"{args.folds} stratified folds, seed {args.seed}"
    )
    splitter = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    rows = []
    confidences: list[float] = []
    corrects: list[bool] = []
    size = 0
    for k, (train, test) in enumerate(splitter.split(np.zeros(len(y)), y), 1):
        tr_texts = [texts[i] for i in train]
        te_texts = [texts[i] for i in test]

        started = time.perf_counter()
        base = baseline().fit(tr_texts, y[train])
        base_s = time.perf_counter() - started
        base.predict(te_texts[:1])
        started = time.perf_counter()
        base_pred = [base.predict([t])[0] for t in te_texts]
        base_ms = (time.perf_counter() - started) * 1000 / len(te_texts)

        started = time.perf_counter()
        ours = TextClassifier(seed=SEED, self_training=args.self_training).fit(
            tr_texts, list(y[train]), unlabelled=unlabelled, tree=tree
        )
        ours_s = time.perf_counter() - started
        result = evaluate(ours, te_texts, list(y[test]))
        predictions = ours.predict(te_texts)
        confidences.extend(p.confidence for p in predictions)
        corrects.extend(p.label == t for p, t in zip(predictions, y[test], strict=True))
        size = len(ours.to_bytes())

        row = (
            f1_score(y[test], base_pred, average="macro"),
            accuracy_score(y[test], base_pred),
            base_s,
            base_ms,
            result["macro_f1"],
            result["accuracy"],
            ours_s,
            result["ms_per_item"],
        )
        rows.append(row)
        print(
            f"fold {k}: baseline F1 {row[0]:.4f} acc {row[1]:.4f} ({row[2]:.1f} s, "
            f"{row[3]:.2f} ms/order) | ours F1 {row[4]:.4f} acc {row[5]:.4f} ({row[6]:.1f} s, "
            f"{row[7]:.2f} ms/order, {ours.meta['n_word_vectors']} word vectors, "
            f"{ours.meta['n_lexicon_terms']} lexicon terms, {ours.meta['n_pseudo']} pseudo-labels)",
            flush=True,
        )
    mean = np.mean(np.array(rows), axis=0)
    ece = expected_calibration_error(np.array(confidences), np.array(corrects, dtype=float))
    print(
        f"baseline (char 1-2 TF-IDF + LinearSVC): macro-F1 {mean[0]:.4f}  "
        f"accuracy {mean[1]:.4f}  train {mean[2]:.1f} s  {mean[3]:.2f} ms/order"
    )
    print(
        f"ours ({ours.meta['recipe']} {ours.meta['version']}"
        f"{', word vectors' if unlabelled else ''}{', lexicon' if tree else ''}"
        f"{', self-training' if args.self_training else ''}): macro-F1 {mean[4]:.4f}  "
        f"accuracy {mean[5]:.4f}  train {mean[6]:.1f} s  {mean[7]:.2f} ms/order"
    )
    print(f"expected calibration error (ours, 10 bins, held-out folds): {ece:.3f}")
    print(f"model size: {size / 1e6:.2f} MB")
    print(f"ratio (ours / baseline macro-F1): {mean[4] / mean[0]:.3f}x")


if __name__ == "__main__":
    main()
