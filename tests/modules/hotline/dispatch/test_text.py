"""Normalization and segmentation of order texts for the dispatch classifier."""

from __future__ import annotations

import pytest

from zhengshu.modules.hotline.dispatch.text import is_word, normalize, words


def test_traditional_becomes_simplified() -> None:
    assert normalize("這個社區的路燈壞了，請儘快維修") == "这个社区的路灯坏了,请尽快维修"


def test_full_width_letters_and_digits_become_half_width() -> None:
    assert normalize("ＡＢＣ小区１２３号楼") == "ABC小区123号楼"
    assert normalize("（第３次反映）！") == "(第3次反映)!"


def test_whitespace_runs_collapse_and_ends_are_stripped() -> None:
    assert normalize("\n\t\t\t标题\n\n\t详情  内容\u3000结束 \r\n") == "标题 详情 内容 结束"
    assert normalize("尊敬的书记:_x000D_ 你好_x000A_再见") == "尊敬的书记: 你好 再见"
    assert normalize("") == ""
    assert normalize(" \t\n ") == ""


@pytest.mark.parametrize(
    "text",
    [
        "這個社區的路燈壞了",
        "ＡＢＣ１２３　臺灣  問題！",
        "\n\t\t\t\t\t\n\t\t\t\t\t座落在A市A3区联丰路米兰春天G2栋320，",
        "㈱ ﹙１﹚ ｶﾞ ﬁ 乾隆 後來 皇后",
    ],
)
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


def test_words_are_jieba_tokens_of_the_normalized_text() -> None:
    tokens = words("小區門口的路燈　壞了")
    assert "路灯" in tokens
    assert "小区" in tokens
    assert all(t.strip() for t in tokens)
    assert "".join(tokens) == normalize("小區門口的路燈　壞了").replace(" ", "")
    assert words("   ") == []


def test_is_word_knows_dictionary_words_only() -> None:
    assert is_word("路灯")
    assert is_word("工资")
    assert not is_word("资发")  # a bigram across two words
