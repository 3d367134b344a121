"""The classifier's dense features: the category tree's words and word vectors learnt from
unlabelled messages."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from tests.modules.hotline.dispatch.test_classifier import HELD_OUT, _training_set
from zhengshu.modules.hotline.dispatch import features
from zhengshu.modules.hotline.dispatch.classifier import TextClassifier, read_tree_csv
from zhengshu.modules.hotline.dispatch.features import Lexicon, WordVectors, tree_from_rows

TREE = {
    "城乡建设": ["物业管理", "燃气管道和供水", "住房保障"],
    "劳动和社会保障": ["失业登记", "退休金、养老保险"],
    "环境保护": ["辐射污染", "噪音污染"],
}
LIGHT_WORDS = ["路灯", "照明", "灯杆", "维修", "夜间", "漆黑"]
WAGE_WORDS = ["工资", "拖欠", "讨薪", "老板", "工人", "结清"]


def topic_corpus(n: int, seed: int = 1) -> list[list[str]]:
    """Documents each drawn from one of two topics' words."""
    rng = random.Random(seed)
    return [rng.choices(LIGHT_WORDS if i % 2 else WAGE_WORDS, k=12) for i in range(n)]


def test_the_tree_is_cut_into_terms_each_speaking_for_one_label() -> None:
    lexicon = Lexicon.from_tree(
        {**TREE, "其他": ["路灯"]}, ["城乡建设", "环境保护", "劳动和社会保障"]
    )
    assert lexicon.labels == ["城乡建设", "环境保护", "劳动和社会保障"]  # only what is learnt
    housing, environment, labour = (set(t) for t in lexicon.terms)
    assert {"物业管理", "燃气管道", "供水", "住房保障", "住房"} <= housing  # split at 和, cut
    assert {"失业登记", "退休金", "养老保险"} <= labour  # split at 、
    assert "辐射污染" in environment
    assert "污染" in environment  # in 辐射污染 and 噪音污染, both of one label: kept
    assert all(len(t) >= 2 for t in housing | environment | labour)
    shared = Lexicon.from_tree({"a": ["噪音扰民"], "b": ["噪音污染"]}, ["a", "b"])
    assert "噪音" not in shared.terms[0] + shared.terms[1]  # says nothing: dropped
    row = lexicon.row("楼下燃气管道漏气，供水也停了")
    assert row[0] == pytest.approx(np.log1p(3))  # 燃气管道, 燃气, 供水 (and 管道)
    assert row[1] == row[2] == 0
    assert lexicon.mentioned("申请失业登记", "劳动和社会保障")[0] == "失业登记"
    assert Lexicon.from_state(lexicon.to_state()) == lexicon


def test_a_tree_from_csv_rows(tmp_path: Path) -> None:
    assert tree_from_rows([["城乡建设", "安全生产", "事故处理"], ["城乡建设", "物业", ""]]) == {
        "城乡建设": ["安全生产", "事故处理", "物业"]
    }
    path = tmp_path / "taxonomy.csv"
    path.write_text("一级分类,二级分类,三级分类\n城乡建设,安全生产,事故处理\n", encoding="utf-8")
    assert read_tree_csv(path) == {"城乡建设": ["安全生产", "事故处理"]}
    path.write_text("一级分类\n城乡建设\n", encoding="utf-8")
    with pytest.raises(ValueError, match="two columns"):
        read_tree_csv(path)


def test_word_vectors_put_words_of_one_topic_together() -> None:
    vectors = WordVectors.fit(topic_corpus(features.MIN_DOCUMENTS))
    assert vectors is not None
    assert vectors.vectors.dtype == np.int8

    def cosine(a: str, b: str) -> float:
        va, vb = vectors.row([a]), vectors.row([b])
        return float(va @ vb)

    assert cosine("路灯", "照明") > cosine("路灯", "工资") + 0.5
    assert cosine("拖欠", "讨薪") > cosine("拖欠", "灯杆") + 0.5
    assert np.linalg.norm(vectors.row(["路灯", "维修", "没见过的词"])) == pytest.approx(1.0)
    assert not vectors.row(["没见过的词"]).any()
    again = WordVectors.fit(topic_corpus(features.MIN_DOCUMENTS))
    assert again is not None
    assert np.array_equal(again.vectors, vectors.vectors)  # deterministic
    loaded = WordVectors.from_state(vectors.to_state())
    assert np.array_equal(loaded.row(["路灯", "工资"]), vectors.row(["路灯", "工资"]))
    assert WordVectors.fit(topic_corpus(features.MIN_DOCUMENTS - 1)) is None  # too few


def test_the_tree_moves_a_text_the_orders_never_worded_so() -> None:
    texts, labels = _training_set()
    plain = TextClassifier(seed=0, self_training=False).fit(texts, labels)
    with_tree = TextClassifier(seed=0, self_training=False).fit(texts, labels, tree=TREE)
    assert with_tree.meta["n_lexicon_terms"] > 0
    text = "申请失业登记\n想办理失业登记和退休金的手续"
    label = "劳动和社会保障"
    before = dict(plain.predict_one(text).top)[label]
    after = dict(with_tree.predict_one(text).top)[label]
    assert after > before
    for held, wanted in HELD_OUT:
        assert with_tree.predict_one(held).label == wanted


def test_a_model_with_vectors_and_tree_round_trips() -> None:
    texts, labels = _training_set()
    unlabelled = [
        "".join(words) for words in topic_corpus(features.MIN_DOCUMENTS + 10)
    ]  # joined: segmented again by jieba at training
    model = TextClassifier(seed=0, self_training=False).fit(
        texts, labels, unlabelled=unlabelled, tree=TREE
    )
    assert model.meta["n_word_vectors"] > 0
    assert model.meta["n_unlabelled"] > 0
    assert model.meta["version"] == "2.0"
    loaded = TextClassifier.from_bytes(model.to_bytes())
    for held, wanted in HELD_OUT:
        one, two = model.predict_one(held), loaded.predict_one(held)
        assert one == two
        assert one.label == wanted
        assert all(reason for reason in one.reasons)  # dense columns are never reasons
