"""Extreme-event words with their context rules, and a city's own word list."""

from __future__ import annotations

from pathlib import Path

import pytest

from zhengshu.modules.hotline.insight.extreme import load_rules, scan


def terms(text: str, path: Path | None = None) -> set[tuple[str, str]]:
    return {(hit.kind, hit.term) for hit in scan(text, path)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("老板拖欠工资半年，如果再不解决，我就去跳楼。", {("life", "跳楼")}),
        ("没钱了我就跳楼", {("life", "跳楼")}),
        ("他拿着刀扬言要砍人", {("life", "砍人")}),
        ("他說要自殺", {("life", "自杀")}),  # Traditional script
        ("小区煤气泄漏，有人被困电梯", {("public_safety", "煤气泄漏"), ("public_safety", "被困")}),
        ("昨晚楼下发生爆炸，多人受伤", {("public_safety", "爆炸")}),
        ("工地三十多名农民工在项目部门口聚集讨薪", {("group", "聚集"), ("group", "讨薪")}),
        ("小区门口聚集了上百业主拉横幅", {("group", "聚集"), ("group", "拉横幅")}),
        ("欠薪三个月，明天集体上访", {("group", "集体上访")}),
    ],
)
def test_hits(text: str, expected: set[tuple[str, str]]) -> None:
    assert terms(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "我不会自杀的，请放心。",  # negation
        "没有人跳楼",
        "去年这里有人跳楼。",  # the past
        "如果发生火灾后果不堪设想",  # hypothetical, no threat
        "电动车在楼道充电容易起火",
        "存在火灾隐患",
        "老房子有倒塌危险",  # a hazard, not an event
        "学校开展防溺水宣传",
        "信息爆炸的时代",  # another word
        "有人在聚集",  # a group term needs a number of people
        "老板拖欠工资，我们要讨薪",
        "您觉得游行、跳楼能解决这些问题吗",  # a question
    ],
)
def test_no_false_alarm(text: str) -> None:
    assert scan(text) == []


def test_hit_has_level_and_snippet() -> None:
    (hit,) = scan("物业一直不处理。老板拖欠工资半年，如果再不解决，我就去跳楼。请领导关注")
    assert hit.level == 3
    assert "跳楼" in hit.snippet
    assert "物业" not in hit.snippet  # the sentence, not the whole text


def test_a_city_copy_overrides_the_list(tmp_path: Path) -> None:
    city = tmp_path / "words.yaml"
    city.write_text(
        "categories:\n  - kind: life\n    level: 3\n    terms: [烧炭]\n",
        encoding="utf-8",
    )
    assert terms("他说要烧炭", city) == {("life", "烧炭")}
    assert terms("他说要跳楼", city) == set()
    assert load_rules(city).labels == {"life": "life"}


def test_malformed_list_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("categories: [{kind: life}]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="terms"):
        load_rules(bad)
