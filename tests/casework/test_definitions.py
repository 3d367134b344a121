"""Workflow definitions: the packaged 12345 workflow, parse errors, limits, city overrides."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from zhengshu.casework import definitions
from zhengshu.casework.definitions import (
    Limit,
    WorkflowError,
    load_workflow,
    parse_workflow,
)
from zhengshu.modules.hotline.service import HotlineConfig


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    """``load_workflow`` memoizes by (case type, override dir): start and end clean."""
    saved = dict(definitions._cache)
    definitions._cache.clear()
    yield
    definitions._cache.clear()
    definitions._cache.update(saved)


def packaged_raw() -> dict[str, Any]:
    text = (
        resources.files("zhengshu.casework").joinpath("workflows/hotline.yaml").read_text("utf-8")
    )
    raw = yaml.safe_load(text)
    assert isinstance(raw, dict)
    return raw


MINIMAL: dict[str, Any] = {
    "case_type": "demo",
    "label": "演示",
    "initial": "open",
    "warning_share": 0.8,
    "states": {
        "open": {"label": "待处理", "stage": "work"},
        "waiting": {"label": "暂停", "stage": "work", "paused": True},
        "done": {"label": "完成", "final": True},
    },
    "actions": {
        "finish": {"label": "完成", "from": ["open"], "to": "done", "permission": "demo:x:y"},
        "pause": {"label": "暂停", "from": ["open"], "to": "waiting", "permission": "demo:x:y"},
        "note": {"label": "记录", "from": ["open", "waiting"], "permission": "demo:x:z"},
    },
    "limits": {"*": {"*": {"work": "3wd"}}},
}


def minimal(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(MINIMAL)
    raw.update(changes)
    return raw


# --------------------------------------------------------------------------- the packaged file

STATES = {
    "registered": ("已受理待派单", "dispatch", False, False),
    "answered": ("已直接答复", None, False, True),
    "transferred": ("已移交 110/119/120", None, False, True),
    "dispatched": ("待签收", "sign_for", False, False),
    "returned": ("退单待审核", "review", False, False),
    "handling": ("办理中", "handle", False, False),
    "extension_requested": ("延期待审批", "handle", False, False),
    "suspended": ("已挂起", "handle", True, False),
    "replied": ("已答复待回访", "callback", False, False),
    "closed": ("已办结", None, False, True),
    "merged": ("已并单", None, False, True),
}

# name: (label, sources, target, permission, note_required, by_lead_unit)
ACTIONS: dict[str, tuple[str, set[str], str | None, str, bool, bool]] = {
    "answer_directly": (
        "直接答复",
        {"registered"},
        "answered",
        "hotline:order:answer",
        True,
        False,
    ),
    "transfer_emergency": (
        "移交 110/119/120",
        {"registered", "dispatched"},
        "transferred",
        "hotline:order:transfer",
        True,
        False,
    ),
    "dispatch": ("派单", {"registered"}, "dispatched", "hotline:order:dispatch", False, False),
    "merge": ("并单", {"registered"}, "merged", "hotline:order:merge", False, False),
    "sign_for": ("签收", {"dispatched"}, "handling", "hotline:order:sign_for", False, True),
    "return_order": ("退单", {"dispatched"}, "returned", "hotline:order:return", True, True),
    "reject_return": (
        "退单不予同意",
        {"returned"},
        "dispatched",
        "hotline:order:review_return",
        True,
        False,
    ),
    "redispatch": (
        "改派",
        {"returned", "dispatched", "handling"},
        "dispatched",
        "hotline:order:dispatch",
        False,
        False,
    ),
    "pass_down": (
        "下派村（社区）",
        {"handling"},
        None,
        "hotline:order:assign",
        False,
        True,
    ),
    "record_contact": (
        "联系诉求人",
        {"handling", "extension_requested"},
        None,
        "hotline:order:handle",
        True,
        True,
    ),
    "request_extension": (
        "申请延期",
        {"handling"},
        "extension_requested",
        "hotline:extension:request",
        True,
        True,
    ),
    "approve_extension": (
        "同意延期",
        {"extension_requested"},
        "handling",
        "hotline:extension:decide",
        False,
        False,
    ),
    "refuse_extension": (
        "不同意延期",
        {"extension_requested"},
        "handling",
        "hotline:extension:decide",
        True,
        False,
    ),
    "suspend": ("挂起", {"handling"}, "suspended", "hotline:order:suspend", True, False),
    "resume": ("恢复办理", {"suspended"}, "handling", "hotline:order:suspend", False, False),
    "reply": ("答复", {"handling"}, "replied", "hotline:order:reply", True, True),
    "close": ("回访办结", {"replied"}, "closed", "hotline:order:callback", False, False),
    "rework": ("重办", {"replied"}, "handling", "hotline:order:callback", True, False),
    "supervise": (
        "督办",
        {
            "registered",
            "dispatched",
            "returned",
            "handling",
            "extension_requested",
            "suspended",
            "replied",
        },
        None,
        "hotline:order:supervise",
        True,
        False,
    ),
    "urge": (
        "催办",
        {"dispatched", "returned", "handling", "extension_requested", "replied"},
        None,
        "hotline:order:urge",
        True,
        False,
    ),
}


def test_the_packaged_hotline_workflow_loads() -> None:
    workflow = load_workflow("hotline")
    assert workflow.case_type == "hotline"
    assert workflow.label == "12345 工单"
    assert workflow.initial == "registered"
    assert workflow.warning_share == 0.8
    assert {
        name: (s.label, s.stage, s.paused, s.final) for name, s in workflow.states.items()
    } == STATES
    assert {
        name: (a.label, set(a.sources), a.target, a.permission, a.note_required, a.by_lead_unit)
        for name, a in workflow.actions.items()
    } == ACTIONS
    assert workflow.state("suspended").paused is True
    assert workflow.action("sign_for").by_lead_unit is True


def test_the_packaged_workflow_is_loaded_once() -> None:
    assert load_workflow("hotline") is load_workflow("hotline")


def test_available_actions_per_state() -> None:
    workflow = load_workflow("hotline")
    assert [a.name for a in workflow.available("registered")] == [
        "answer_directly",
        "transfer_emergency",
        "dispatch",
        "merge",
        "supervise",
    ]
    assert [a.name for a in workflow.available("handling")] == [
        "redispatch",
        "pass_down",
        "record_contact",
        "request_extension",
        "suspend",
        "reply",
        "supervise",
        "urge",
    ]
    assert [a.name for a in workflow.available("suspended")] == ["resume", "supervise"]
    for final in ("answered", "transferred", "closed", "merged"):
        assert workflow.available(final) == []


def test_an_unknown_action_is_a_workflow_error() -> None:
    with pytest.raises(WorkflowError, match="unknown action 'fly' in hotline"):
        load_workflow("hotline").action("fly")


# --------------------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("text", "limit", "label"),
    [
        ("30m", Limit(30, "m"), "30分钟"),
        ("4wh", Limit(4, "wh"), "4个工作小时"),
        ("5wd", Limit(5, "wd"), "5个工作日"),
        (" 10 wd ", Limit(10, "wd"), "10个工作日"),
    ],
)
def test_limits_parse(text: str, limit: Limit, label: str) -> None:
    assert Limit.parse(text) == limit
    assert limit.label == label


@pytest.mark.parametrize("text", ["5days", "5", "wd", "-1wd", "1.5wh", "5 d", "", "5WD", "5wdx"])
def test_bad_limits_are_refused(text: str) -> None:
    with pytest.raises(WorkflowError, match="时限格式应为 30m / 4wh / 5wd"):
        Limit.parse(text)


@pytest.mark.parametrize(
    ("request_type", "urgency", "stage", "expected"),
    [
        # exact request type + exact urgency
        ("help", "emergency", "dispatch", Limit(5, "m")),
        ("help", "emergency", "sign_for", Limit(15, "m")),
        ("help", "emergency", "handle", Limit(4, "wh")),
        # "*" + urgency beats request type + "*": urgency weighs more
        ("help", "urgent", "sign_for", Limit(1, "wh")),  # not help/* 30m
        ("help", "urgent", "handle", Limit(1, "wd")),  # not help/* 2wd
        ("help", "normal", "dispatch", Limit(10, "m")),
        ("consultation", "urgent", "handle", Limit(1, "wd")),  # not consultation/* 3wd
        ("consultation", "emergency", "handle", Limit(4, "wh")),  # the emergency limit
        ("complaint", "normal", "handle", Limit(5, "wd")),
        ("report", "normal", "handle", Limit(10, "wd")),
        ("suggestion", "urgent", "handle", Limit(1, "wd")),
        # "*" + exact urgency when the request type does not name the stage
        ("help", "emergency", "review", Limit(1, "wh")),
        ("help", "urgent", "review", Limit(2, "wh")),
        ("consultation", "urgent", "callback", Limit(1, "wd")),
        ("complaint", "emergency", "sign_for", Limit(30, "m")),
        ("praise", "urgent", "handle", Limit(1, "wd")),  # no praise limits at all
        (None, "emergency", "dispatch", Limit(5, "m")),
        # "*" + "*" last
        ("help", "normal", "review", Limit(4, "wh")),
        ("consultation", "normal", "callback", Limit(2, "wd")),
        ("complaint", "normal", "sign_for", Limit(2, "wh")),
        ("praise", "normal", "handle", Limit(5, "wd")),
        (None, "normal", "dispatch", Limit(30, "m")),
        ("unknown", "unheard_of", "review", Limit(4, "wh")),
        # a stage without any limit
        ("help", "emergency", "nap", None),
    ],
)
def test_limit_for_uses_the_most_specific_packaged_limit(
    request_type: str | None, urgency: str, stage: str, expected: Limit | None
) -> None:
    assert load_workflow("hotline").limit_for(request_type, urgency, stage) == expected


def test_limit_for_precedence_level_by_level() -> None:
    levels = {
        ("help", "urgent"): "1m",
        ("*", "urgent"): "2m",
        ("help", "*"): "3m",
        ("*", "*"): "4m",
    }
    expected = [Limit(1, "m"), Limit(2, "m"), Limit(3, "m"), Limit(4, "m")]
    remaining = dict(levels)
    for want in expected:
        limits: dict[str, dict[str, dict[str, str]]] = {}
        for (cat, urg), value in remaining.items():
            limits.setdefault(cat, {}).setdefault(urg, {})["work"] = value
        workflow = parse_workflow(minimal(limits=limits))
        assert workflow.limit_for("help", "urgent", "work") == want
        # The most specific one goes; the next must win.
        del remaining[next(iter(remaining))]
    assert parse_workflow(minimal(limits={})).limit_for("help", "urgent", "work") is None


# --------------------------------------------------------------------------- parse errors


def test_the_minimal_workflow_parses() -> None:
    workflow = parse_workflow(minimal())
    assert workflow.case_type == "demo"
    assert workflow.action("note").target is None
    assert workflow.limit_for(None, "normal", "work") == Limit(3, "wd")


def test_warning_share_defaults_to_eighty_percent() -> None:
    raw = minimal()
    del raw["warning_share"]
    assert parse_workflow(raw).warning_share == 0.8


def test_an_action_from_an_unknown_state_is_refused() -> None:
    raw = minimal()
    raw["actions"]["finish"]["from"] = ["open", "nowhere"]
    with pytest.raises(WorkflowError, match=r"action 'finish' names unknown states \['nowhere'\]"):
        parse_workflow(raw)


def test_an_action_to_an_unknown_state_is_refused() -> None:
    raw = minimal()
    raw["actions"]["finish"]["to"] = "heaven"
    with pytest.raises(WorkflowError, match=r"action 'finish' names unknown states \['heaven'\]"):
        parse_workflow(raw)


def test_an_unknown_initial_state_is_refused() -> None:
    with pytest.raises(WorkflowError, match="initial state 'start' is not a state"):
        parse_workflow(minimal(initial="start"))


def test_a_bad_limit_in_the_file_is_refused() -> None:
    with pytest.raises(WorkflowError, match="'5days'"):
        parse_workflow(minimal(limits={"*": {"*": {"work": "5days"}}}))


def test_a_paused_state_without_a_stage_is_refused() -> None:
    raw = minimal()
    del raw["states"]["waiting"]["stage"]
    with pytest.raises(WorkflowError, match="paused state 'waiting' must name the stage"):
        parse_workflow(raw)


def test_an_action_leaving_a_final_state_is_refused() -> None:
    raw = minimal()
    raw["actions"]["reopen"] = {
        "label": "重开",
        "from": ["done"],
        "to": "open",
        "permission": "demo:x:y",
    }
    with pytest.raises(WorkflowError, match="action 'reopen' leaves a final state"):
        parse_workflow(raw)


@pytest.mark.parametrize("share", [0, 1, 1.5, -0.2, "0", 2])
def test_a_warning_share_out_of_range_is_refused(share: object) -> None:
    with pytest.raises(WorkflowError, match="warning_share must lie between 0 and 1"):
        parse_workflow(minimal(warning_share=share))


@pytest.mark.parametrize("share", [0.5, 0.01, 0.99, "0.75"])
def test_a_warning_share_in_range_is_kept(share: object) -> None:
    assert parse_workflow(minimal(warning_share=share)).warning_share == float(str(share))


def test_a_non_numeric_warning_share_is_a_workflow_error() -> None:
    with pytest.raises(WorkflowError):
        parse_workflow(minimal(warning_share="high"))


@pytest.mark.parametrize(
    "breakage",
    [
        lambda raw: raw.pop("states"),
        lambda raw: raw.pop("actions"),
        lambda raw: raw.pop("case_type"),
        lambda raw: raw["states"]["open"].pop("label"),
        lambda raw: raw["actions"]["finish"].pop("permission"),
        lambda raw: raw["actions"]["finish"].pop("from"),
        lambda raw: raw.__setitem__("limits", {"*": "5wd"}),
        lambda raw: raw["states"].__setitem__("odd", "just a string"),
    ],
    ids=[
        "no-states",
        "no-actions",
        "no-case-type",
        "state-without-label",
        "action-without-permission",
        "action-without-from",
        "limits-not-a-mapping",
        "state-not-a-mapping",
    ],
)
def test_a_misshapen_file_is_refused(breakage: Any) -> None:
    raw = minimal()
    breakage(raw)
    with pytest.raises(WorkflowError, match="workflow file is missing or misshapes"):
        parse_workflow(raw)


def test_the_packaged_file_round_trips_through_parse() -> None:
    assert parse_workflow(packaged_raw()) == load_workflow("hotline")


# --------------------------------------------------------------------------- city overrides


def write_override(directory: Path, **changes: Any) -> Path:
    raw = packaged_raw()
    raw.update(changes)
    path = directory / "hotline.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
    return path


def test_a_city_file_replaces_the_packaged_workflow(tmp_path: Path) -> None:
    limits = packaged_raw()["limits"]
    limits["complaint"]["*"]["handle"] = "7wd"
    write_override(tmp_path, warning_share=0.75, label="东莞 12345 工单", limits=limits)
    custom = load_workflow("hotline", tmp_path)
    assert custom.label == "东莞 12345 工单"
    assert custom.warning_share == 0.75
    assert custom.limit_for("complaint", "normal", "handle") == Limit(7, "wd")
    packaged = load_workflow("hotline")
    assert packaged.warning_share == 0.8
    assert packaged.limit_for("complaint", "normal", "handle") == Limit(5, "wd")


def test_a_directory_without_the_file_falls_back_to_the_packaged_one(tmp_path: Path) -> None:
    assert load_workflow("hotline", tmp_path) == load_workflow("hotline")
    assert load_workflow("hotline", tmp_path / "missing") == load_workflow("hotline")


def test_the_city_file_is_cached_until_the_cache_is_cleared(tmp_path: Path) -> None:
    path = write_override(tmp_path, warning_share=0.75)
    first = load_workflow("hotline", tmp_path)
    assert first.warning_share == 0.75
    write_override(tmp_path, warning_share=0.6)
    assert load_workflow("hotline", tmp_path) is first  # memoized: the edit is not seen
    definitions._cache.clear()
    assert load_workflow("hotline", tmp_path).warning_share == 0.6
    assert path.exists()


def test_a_broken_city_file_is_refused_and_not_cached(tmp_path: Path) -> None:
    raw = packaged_raw()
    raw["limits"]["*"]["*"]["handle"] = "5days"
    (tmp_path / "hotline.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
    with pytest.raises(WorkflowError, match="'5days'"):
        load_workflow("hotline", tmp_path)
    assert ("hotline", str(tmp_path)) not in definitions._cache


def test_the_hotline_config_reads_the_city_file(tmp_path: Path) -> None:
    write_override(tmp_path, warning_share=0.7)
    config = HotlineConfig(number_prefix="GD", work_periods=[(510, 720)], workflow_dir=tmp_path)
    assert config.workflow().warning_share == 0.7
