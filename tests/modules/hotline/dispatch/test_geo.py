"""Address resolution: free text (or a point) to town/street and village/community."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from zhengshu.modules.hotline.dispatch.geo import (
    Gazetteer,
    PlaceRow,
    Resolution,
    demo_rows,
    normalize,
    packaged_places,
)

BENCH = Path(__file__).parents[4] / "bench" / "data" / "dongguan_addresses.csv"


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return Gazetteer.demo()


def answer(gazetteer: Gazetteer, address: str) -> tuple[str | None, str | None]:
    result = gazetteer.resolve(address)
    return result.town, result.village


@pytest.mark.parametrize(
    ("address", "town", "village"),
    [
        # formal, with every level
        ("广东省东莞市长安镇乌沙社区兴发南路88号", "长安镇", "乌沙社区"),
        ("东莞市东城街道主山社区东城中路101号", "东城街道", "主山社区"),
        ("东莞市道滘镇南城村", "道滘镇", "南城村"),  # a village named after another street
        ("东莞市寮步镇石龙坑村", "寮步镇", "石龙坑村"),  # ... and after another town
        ("东莞市中堂镇中心社区", "中堂镇", "中心社区"),  # common word, written out in full
        # missing levels
        ("长安镇上沙社区振安路", "长安镇", "上沙社区"),
        ("东莞市长安镇", "长安镇", None),
        ("东莞市长安镇沙头社区", "长安镇", None),  # a community the tree does not hold
        # old names and other suffixes
        ("东莞市东城区东城中路", "东城街道", None),
        ("东莞市长安镇乌沙村", "长安镇", "乌沙社区"),
        ("东莞松山湖高新区", "松山湖", None),
        ("东莞市太平镇", "虎门镇", None),
        # slips of the pen
        ("东莞市长按镇乌沙社区", "长安镇", "乌沙社区"),
        ("樟目头百果洞", "樟木头镇", "百果洞社区"),
        ("东莞市东成街道", "东城街道", None),
        ("东莞市大朗镇松木三村", "大朗镇", "松木山村"),
        ("东莞市樟木头镇百果峒社区", "樟木头镇", "百果洞社区"),
        # Traditional characters, full-width forms, spaces
        ("廣東省東莞市長安鎮烏沙社區", "长安镇", "乌沙社区"),
        ("东莞市　长安镇　锦厦社区　１２３号", "长安镇", "锦厦社区"),
        ("东 莞 市 南 城 街 道 石 鼓 社 区", "南城街道", "石鼓社区"),
        # landmarks and colloquial speech
        ("虎门销烟池旁边", "虎门镇", None),
        ("沙角炮台停车场", "虎门镇", "沙角社区"),
        ("华为溪流背坡村", "松山湖", None),
        ("长安那边的乌沙", "长安镇", "乌沙社区"),
        ("东莞桥头", "桥头镇", None),
    ],
)
def test_typical_addresses(gazetteer: Gazetteer, address: str, town: str, village: str) -> None:
    result = gazetteer.resolve(address)
    assert (result.town, result.village) == (town, village)
    assert not result.needs_human
    assert 0.5 <= result.confidence <= 1.0
    assert result.matched


@pytest.mark.parametrize(
    "address",
    [
        "深圳市宝安区沙井街道",  # outside the city
        "北京市东城区东华门",  # a 东城区 elsewhere
        "广州市南沙区横沥镇",  # a 横沥镇 elsewhere
        "香港沙田",
        "东莞大道123号",  # only a road
        "虎门大道",  # a road named after a town
        "东莞火车站",  # two stations are called that
        "虎门港码头",  # the port spans several towns
        "东莞城市管理局门口",  # 莞城 must not be read out of 东莞城市
        "东莞市新基村",  # a common name without its town
        "你好我要投诉",
        "",
        "东莞市长宁镇",  # not a town of the city, not a near miss either
    ],
)
def test_sent_to_a_human(gazetteer: Gazetteer, address: str) -> None:
    result = gazetteer.resolve(address)
    assert result.needs_human
    assert (result.town, result.village, result.confidence) == (None, None, 0.0)
    assert result.reason


def test_village_alone_implies_its_town(gazetteer: Gazetteer) -> None:
    assert answer(gazetteer, "东莞市乌沙社区") == ("长安镇", "乌沙社区")
    assert answer(gazetteer, "东莞雁田") == ("凤岗镇", "雁田村")  # a distinctive stem
    assert answer(gazetteer, "东莞市篁村") == ("南城街道", "篁村社区")
    # Implied is less certain than named.
    named = gazetteer.resolve("凤岗镇雁田村")
    implied = gazetteer.resolve("东莞雁田村")
    assert implied.confidence < named.confidence
    # A stem that is a common word, or shared by two towns, implies nothing.
    assert gazetteer.resolve("东莞市中心社区").needs_human
    assert gazetteer.resolve("新基").needs_human
    # With its town named, the shared stem picks that town's village.
    assert answer(gazetteer, "南城新基社区") == ("南城街道", "新基社区")
    assert answer(gazetteer, "麻涌镇新基村") == ("麻涌镇", "新基村")


def test_conflicts(gazetteer: Gazetteer) -> None:
    # A village of another town, written out in full: the address contradicts itself.
    result = gazetteer.resolve("长安镇雁田村")
    assert result.needs_human
    assert "凤岗镇" in (result.reason or "")
    assert gazetteer.resolve("虎门镇乌沙社区").needs_human
    # Two towns named.
    assert gazetteer.resolve("从长安搬到虎门").needs_human
    # A short name shared with a village elsewhere (鹤田 of 中堂) inside a village the
    # tree lacks: the town stands, the village is left empty, the confidence drops.
    result = gazetteer.resolve("东莞市石碣镇鹤田厦村")
    assert (result.town, result.village) == ("石碣镇", None)
    assert result.confidence < gazetteer.resolve("东莞市石碣镇").confidence
    # A road named after another town does not override the town named.
    assert answer(gazetteer, "东莞市长安镇虎门大道") == ("长安镇", None)
    # Outside the city only when nothing of the city came first.
    assert answer(gazetteer, "凤岗镇雁田村（与深圳交界）") == ("凤岗镇", "雁田村")


def test_confidence_orders_evidence(gazetteer: Gazetteer) -> None:
    exact = gazetteer.resolve("东莞市长安镇").confidence
    short = gazetteer.resolve("长安").confidence
    slip = gazetteer.resolve("东莞市长按镇").confidence
    fuzzy = gazetteer.resolve("东莞市东成街道").confidence
    assert exact > short > slip > fuzzy >= 0.5
    # Agreement between levels raises it.
    assert gazetteer.resolve("东莞市长安镇乌沙社区").confidence > exact


def test_as_dict_is_the_cli_shape(gazetteer: Gazetteer) -> None:
    data = gazetteer.resolve("東莞市虎門鎮北柵社區").as_dict()
    assert {k: data[k] for k in ("town", "village")} == {"town": "虎门镇", "village": "北栅社区"}
    assert isinstance(data["confidence"], float)
    assert data["town_code"] == "441900121000"
    assert data["village_code"] == "441900121014"
    human = gazetteer.resolve("深圳").as_dict()
    assert (human["town"], human["village"], human["confidence"]) == (None, None, 0.0)


def test_normalize() -> None:
    assert normalize("　東莞市 長安鎮，烏沙社區１２３號！") == "东莞市长安镇乌沙社区123号"


def test_from_rows_and_aliases() -> None:
    rows = [
        PlaceRow("C", None, "city", "示例市", "示例"),
        PlaceRow("T1", "C", "town", "青山镇", "青山"),
        PlaceRow("T2", "C", "street", "绿水街道", "绿水"),
        PlaceRow("V1", "T1", "village", "白石村", "白石村"),
        PlaceRow("V2", "T2", "community", "白石社区", None),
        PlaceRow("D", "C", "department", "示例市水务局", "水务局"),
    ]
    bare = Gazetteer.from_rows(rows)
    assert answer(bare, "示例市青山镇白石村") == ("青山镇", "白石村")
    assert answer(bare, "绿水白石社区") == ("绿水街道", "白石社区")
    assert bare.resolve("白石").needs_human  # shared by two towns
    assert bare.resolve("老城区").needs_human
    aliased = Gazetteer.from_rows(rows, {"towns": {"绿水街道": ["老城区"], "无此镇": ["x"]}})
    assert answer(aliased, "老城区") == ("绿水街道", None)


def test_resolve_point() -> None:
    rows = [
        PlaceRow("C", None, "city", "示例市", "示例"),
        PlaceRow("T1", "C", "town", "青山镇", "青山"),
        PlaceRow("T2", "C", "town", "绿水镇", "绿水"),
    ]
    places: dict[str, Any] = {
        "centres": {"青山镇": [23.0, 113.7], "绿水镇": [23.0, 113.8]},
        "centre_radius_km": 4,
    }
    gazetteer = Gazetteer.from_rows(rows, places)
    near = gazetteer.resolve_point(23.005, 113.705)
    assert (near.town, near.village, near.town_code) == ("青山镇", None, "T1")
    assert 0 < near.confidence <= 0.6
    assert gazetteer.resolve_point(24.0, 113.7).needs_human  # far from every centre
    assert gazetteer.resolve_point(float("nan"), 113.7).needs_human
    # No centres configured (the packaged file has none): always a human.
    assert Gazetteer.from_rows(rows).resolve_point(23.0, 113.7).needs_human


def test_demo_tree_and_packaged_places_agree() -> None:
    """Every unit places.yaml names exists in the demo tree (no silently dropped entry)."""
    names = {row.name for row in demo_rows()}
    places = packaged_places()
    for section in ("towns", "misspellings"):
        assert set(places[section]) <= names, section
    for key in places["villages"]:
        assert key.split("/")[1] in names, key
    for spec in places["landmarks"].values():
        assert spec["town"] in names
        assert spec.get("village") is None or spec["village"] in names


def test_from_session_reads_the_units_table(db: Session) -> None:
    gazetteer = Gazetteer.from_session(db)
    result = gazetteer.resolve("东莞市长安镇乌沙社区")
    assert (result.town, result.village) == ("长安镇", "乌沙社区")
    assert result.town_code == "441900119000"
    assert answer(gazetteer, "东莞市太平镇") == ("虎门镇", None)  # packaged aliases too


def test_bench_set_wrong_share_below_one_percent(gazetteer: Gazetteer) -> None:
    with BENCH.open(encoding="utf-8", newline="") as handle:
        cases = list(csv.DictReader(handle))
    assert len(cases) >= 220
    wrong, right = [], 0
    for case in cases:
        expected = (case["town"] or None, case["village"] or None)
        result: Resolution = gazetteer.resolve(case["address"])
        got = (result.town, result.village)
        if got == expected:
            right += 1
        elif got[0] is not None and not (got[0] == expected[0] and got[1] is None):
            wrong.append((case["address"], expected, got))
    assert len(wrong) / len(cases) < 0.01, wrong
    assert right / len(cases) > 0.9
