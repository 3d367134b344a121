"""Hot issues: places, clustering, scoring, reading exports, and the ``hot scan`` CLI."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zhengshu.cli_hot import hot_app
from zhengshu.modules.hotline.insight.hot import (
    Message,
    cluster,
    extract_places,
    hotness,
    read_messages_csv,
)

# ../shared/data/teddy2020c beside the checkout (or shared/ inside it); never copied in.
_ROOT = Path(__file__).resolve().parents[4]
DATA = next(
    (
        d
        for d in (
            _ROOT.parent / "shared" / "data" / "teddy2020c",
            _ROOT / "shared" / "data" / "teddy2020c",
        )
        if d.is_dir()
    ),
    _ROOT.parent / "shared" / "data" / "teddy2020c",
)
CONTRACT = ["rank", "score", "start", "end", "place", "description", "message_ids"]
runner = CliRunner()
T0 = datetime(2024, 6, 3, 9, 0)  # noqa: DTZ001 - naive local times, as exported

WATER = [
    "阳光花园小区停水三天了，什么时候恢复供水？",
    "A2区阳光花园小区突然停水，没有任何通知",
    "阳光花园小区连续停水，居民生活受影响",
    "投诉阳光花园小区停水问题，物业不作为",
    "阳光花园小区又停水了，老人小孩没水用",
]
NOISE = [
    "咨询新生儿医保办理流程",
    "建议增加公交线路到高铁站",
    "驾驶证到期换证需要什么材料",
    "公积金提取需要多久到账",
    "反映某超市销售过期食品",
    "请问养老保险怎么补缴",
    "投诉快递公司延误派送",
    "建议在学校门口设置红绿灯",
    "咨询居住证办理条件",
    "网约车乱收费问题",
]


def message(i: int, title: str, user: str, at: datetime, **extra: object) -> Message:
    return Message(id=str(i), user=user, title=title, text=title, at=at, **extra)  # type: ignore[arg-type]


def test_extract_places_compounds_schools_and_groups() -> None:
    assert "A2区丽发新城小区" in extract_places("A2区丽发新城小区附近搅拌站噪音扰民")
    assert "A市经济学院" in extract_places("A市经济学院强制学生实习")
    assert extract_places("投诉小区附近搅拌站噪音扰民") == []  # generic words are no places
    assert "外卖骑手" in extract_places("外卖骑手被拖欠工资")
    # Traditional script and full-width digits read the same
    assert "A2区丽发新城小区" in extract_places("Ａ2區麗發新城小區附近攪拌站噪音擾民")


def test_a_compounds_water_cut_is_one_issue_among_noise() -> None:
    messages = [
        message(i, title, f"u{i}", T0 + timedelta(hours=5 * i)) for i, title in enumerate(WATER)
    ]
    messages += [
        message(100 + i, title, f"n{i}", T0 + timedelta(days=i % 20))
        for i, title in enumerate(NOISE)
    ]
    issues = cluster(messages)
    assert len(issues) == 1
    issue = issues[0]
    assert issue.place is not None
    assert "阳光花园" in issue.place
    assert sorted(issue.message_ids) == ["0", "1", "2", "3", "4"]
    assert issue.n_users == 5
    assert issue.start == T0
    assert issue.end == T0 + timedelta(hours=20)
    assert "停水" in issue.description
    data = issue.as_json()
    assert list(data)[: len(CONTRACT)] == CONTRACT
    assert data["start"] == T0.isoformat()


def test_one_caller_writing_again_and_again_is_no_hot_issue() -> None:
    messages = [message(i, title, "same", T0 + timedelta(hours=i)) for i, title in enumerate(WATER)]
    assert cluster(messages) == []


def test_score_grows_with_messages_callers_votes_and_unresolved_share() -> None:
    base = hotness(n_messages=5, n_users=4)
    assert hotness(n_messages=6, n_users=4) > base
    assert hotness(n_messages=5, n_users=5) > base
    assert hotness(n_messages=5, n_users=4, likes=10) > base
    assert hotness(n_messages=5, n_users=4, growth=1.0) > base
    assert hotness(n_messages=5, n_users=4, unresolved_share=1.0) > hotness(
        n_messages=5, n_users=4, unresolved_share=0.0
    )
    assert hotness(n_messages=5, n_users=4, has_place=False) < base


def test_bigger_cluster_ranks_first() -> None:
    messages = [
        message(i, title, f"u{i}", T0 + timedelta(hours=i)) for i, title in enumerate(WATER)
    ]
    lifts = [
        "金色家园小区电梯故障，经常困人",
        "金色家园小区电梯又坏了，老人上下楼困难",
        "投诉金色家园小区电梯故障无人维修",
    ]
    messages += [
        message(50 + i, title, f"v{i}", T0 + timedelta(hours=i)) for i, title in enumerate(lifts)
    ]
    issues = cluster(messages)
    assert [len(i.message_ids) for i in issues] == [5, 3]
    assert [i.rank for i in issues] == [1, 2]
    assert issues[0].score > issues[1].score


def write_votes(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(
            ["留言编号", "留言用户", "留言主题", "留言时间", "留言详情", "反对数", "点赞数"]
        )
        out.writerows(rows)
    return path


def test_read_messages_csv_votes_and_replies(tmp_path: Path) -> None:
    path = write_votes(
        tmp_path / "votes.csv",
        [
            ["1", "A1", "标题", "2019/2/28 11:25:05", "第一行\n第二行", "2", "7"],
            ["2", "A2", "标题二", "", "详情", "0", "0"],
        ],
    )
    first, second = read_messages_csv(path)
    assert first.at == datetime(2019, 2, 28, 11, 25, 5)  # noqa: DTZ001
    assert (first.likes, first.dislikes, first.resolved) == (7, 2, None)
    assert "第二行" in first.text
    assert second.at is None  # some exports leave the time empty
    replies = tmp_path / "replies.csv"
    with replies.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(
            ["留言编号", "留言用户", "留言主题", "留言时间", "留言详情", "答复意见", "答复时间"]
        )
        out.writerow(["3", "A3", "标题", "2019-04-25 09:32:09", "详情", "已转交处理", ""])
    (reply,) = read_messages_csv(replies)
    assert reply.resolved is True


def test_read_messages_csv_names_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="缺少列") as info:
        read_messages_csv(path)
    assert "missing columns" in str(info.value)


def test_cli_scan_prints_json_lines(tmp_path: Path) -> None:
    rows = [
        [str(i), f"u{i}", title, f"2024/6/{3 + i} 9:00:00", title, "0", str(i)]
        for i, title in enumerate(WATER)
    ] + [[str(100 + i), f"n{i}", t, "2024/6/1 8:00:00", t, "0", "0"] for i, t in enumerate(NOISE)]
    path = write_votes(tmp_path / "votes.csv", rows)
    result = runner.invoke(hot_app, ["scan", "--data", str(path), "--top", "3"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert list(data)[: len(CONTRACT)] == CONTRACT
    assert data["start"] == "2024-06-03T09:00:00"


def test_cli_scan_refuses_missing_and_bad_files(tmp_path: Path) -> None:
    result = runner.invoke(hot_app, ["scan", "--data", str(tmp_path / "none.csv")])
    assert result.exit_code == 2
    assert "找不到文件" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    result = runner.invoke(hot_app, ["scan", "--data", str(bad)])
    assert result.exit_code == 2
    assert "缺少列" in result.output


@pytest.mark.skipif(not (DATA / "messages_votes.csv").is_file(), reason="teddy2020c data absent")
def test_cli_scan_on_real_messages(tmp_path: Path) -> None:
    # Every third message of the real export (the whole file takes longer than a unit
    # test should; bench-like runs use the CLI on the full file).
    with (DATA / "messages_votes.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    sample = tmp_path / "sample.csv"
    with sample.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([rows[0], *rows[1::3]])
    result = runner.invoke(hot_app, ["scan", "--data", str(sample), "--top", "5"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 5
    issues = [json.loads(line) for line in lines]
    for issue in issues:
        assert list(issue)[: len(CONTRACT)] == CONTRACT
        assert len(issue["message_ids"]) >= 2
    places = [issue["place"] for issue in issues]
    assert all(places)
    assert len(set(places)) == 5
    assert [issue["rank"] for issue in issues] == [1, 2, 3, 4, 5]
