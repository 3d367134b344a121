"""Smart dispatch on the platform: catalogue, suggestions at intake, automatic dispatch,
and corrections flowing into the next training run."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import unit_id
from tests.web.helpers import login, post
from zhengshu.casework.models import Case, CaseEvent
from zhengshu.kernel.audit import AuditEntry
from zhengshu.kernel.authz import Principal, system_principal
from zhengshu.kernel.errors import InvalidInput, PermissionDenied
from zhengshu.modules.hotline import service
from zhengshu.modules.hotline.dispatch import catalogue, features, suggest, training
from zhengshu.modules.hotline.dispatch.classifier import TextClassifier
from zhengshu.modules.hotline.dispatch.models import TOWN, DispatchModel, DispatchSuggestion
from zhengshu.modules.hotline.enums import Satisfaction, Urgency
from zhengshu.modules.hotline.models import Order
from zhengshu.modules.hotline.schemas import ActionRequest, OrderCreate
from zhengshu.modules.hotline.service import HotlineConfig

Api = Callable[[str], TestClient]
URBAN, LABOUR, ENVIRONMENT = "D002", "D004", "D008"
DONGCHENG = "441900003000"

ADMIN = system_principal("测试管理员")


@pytest.fixture
def config(settings) -> HotlineConfig:  # type: ignore[no-untyped-def]
    return HotlineConfig.from_settings(settings)


def _register(
    db: Session,
    config: HotlineConfig,
    content: str,
    *,
    category: str = "other",
    address: str | None = None,
    urgency: Urgency = Urgency.NORMAL,
    smart: bool = True,
) -> tuple[Case, Order]:
    return service.register_order(
        db,
        system_principal("话务员"),
        config=config,
        data=OrderCreate(
            requester_name="陈先生",
            requester_phone="13800138000",
            content=content,
            category=category,
            address=address,
            urgency=urgency,
        ),
        smart=smart,
    )


def _do(db: Session, config: HotlineConfig, case: Case, action: str, **body: object) -> None:
    service.act(
        db,
        system_principal("测试"),
        config=config,
        order_id=case.id,
        action=action,
        request=ActionRequest(version=case.version, **body),  # type: ignore[arg-type]
    )


def _close(db: Session, config: HotlineConfig, case: Case) -> None:
    _do(db, config, case, "sign_for")
    _do(db, config, case, "reply", note="已处理")
    _do(db, config, case, "callback", solved=True, satisfaction=Satisfaction.SATISFIED)
    assert case.status == "closed"


# --- texts: three kinds of problem, varied enough for a classifier ------------------------

PLACES = ["岗贝社区", "花园新村", "东泰社区", "主山社区", "温塘社区", "桑园社区", "下桥社区"]
LIGHTS = [
    "{p}路段的路灯已经坏了一个多星期，晚上漆黑一片，行人容易摔倒，请尽快维修路灯。",
    "{p}附近好几盏路灯不亮，夜间出行很不安全，希望城管部门派人修复。",
    "反映{p}主干道路灯故障，灯杆倾斜，存在安全隐患，请及时处理路灯问题。",
]
WAGES = [
    "我在{p}一家工厂打工，老板拖欠工资三个月不发，请劳动部门帮忙追讨工资。",
    "{p}某公司拖欠我们二十多名工人的工资和加班费，多次讨要无果，请求劳动监察介入。",
    "反映{p}工地包工头欠薪，工资一直没有结清，希望人社部门依法处理拖欠工资问题。",
]
NOISE = [
    "{p}旁边的工厂每天晚上机器轰鸣，噪音非常大，严重影响居民休息，请环保部门查处。",
    "{p}附近有企业夜间排放刺鼻废气，还有很大的噪音污染，请生态环境部门检测处理。",
    "投诉{p}工厂噪声扰民，半夜还在生产，噪音污染严重，希望环境执法部门处理。",
]


def texts(templates: list[str], n: int) -> list[str]:
    cycle = itertools.cycle(itertools.product(templates, PLACES))
    return [t.format(p=p) + f"（第{i}次反映）" for i, (t, p) in zip(range(n), cycle, strict=False)]


def _history(
    db: Session, config: HotlineConfig, contents: list[str], unit_code: str, category: str
) -> None:
    """Closed orders dispatched by a person to ``unit_code`` under ``category``."""
    unit = unit_id(db, unit_code)
    for content in contents:
        case, _ = _register(db, config, content, smart=False)
        _do(db, config, case, "dispatch", unit_id=unit, category=category)
        _close(db, config, case)


# --- the catalogue -----------------------------------------------------------------------


def test_catalogue_changes_are_versioned_audited_and_replace_the_live_line(db: Session) -> None:
    assert catalogue.version(db) == 0
    first = catalogue.add_rule(
        db, ADMIN, catalogue.RuleInput(category="urban", lead_unit_id=unit_id(db, URBAN))
    )
    second = catalogue.add_rule(db, ADMIN, catalogue.RuleInput(category="urban", lead_is_town=True))
    town_line = catalogue.add_rule(
        db,
        ADMIN,
        catalogue.RuleInput(
            category="urban",
            town_unit_id=unit_id(db, DONGCHENG),
            lead_unit_id=unit_id(db, URBAN),
            co_unit_ids=(unit_id(db, DONGCHENG),),
            auto_threshold=0.95,
        ),
    )
    assert (first.catalogue_version, second.catalogue_version) == (1, 2)
    assert first.retired_at is not None
    assert second.retired_at is None
    assert catalogue.version(db) == 3
    assert {r.id for r in catalogue.live_rules(db)} == {second.id, town_line.id}
    # The most specific live line wins: the town's own, else the city's.
    assert catalogue.lookup(db, "urban", unit_id(db, DONGCHENG)) is town_line
    assert catalogue.lookup(db, "urban", unit_id(db, "441900004000")) is second
    assert catalogue.lookup(db, "labour", None) is None
    catalogue.retire_rule(db, ADMIN, town_line.id)
    assert catalogue.version(db) == 4
    assert catalogue.lookup(db, "urban", unit_id(db, DONGCHENG)) is second
    actions = db.scalars(
        select(AuditEntry.action).where(AuditEntry.action.like("hotline.dispatch.rule.%"))
    ).all()
    assert actions.count("hotline.dispatch.rule.add") == 3
    assert actions.count("hotline.dispatch.rule.retire") == 1


def test_catalogue_refuses_bad_lines(db: Session, as_user: Callable[[str], Principal]) -> None:
    for who in ("dispatcher", "dc.admin"):  # a town's administrator: not the city's list
        with pytest.raises(PermissionDenied):
            catalogue.add_rule(
                db, as_user(who), catalogue.RuleInput(category="urban", lead_is_town=True)
            )
    with pytest.raises(PermissionDenied):
        training.retrain(db, as_user("dc.admin"))
    for bad in [
        catalogue.RuleInput(category="no-such", lead_is_town=True),
        catalogue.RuleInput(category="urban"),  # no lead at all
        catalogue.RuleInput(category="urban", lead_is_town=True, lead_unit_id=unit_id(db, URBAN)),
        catalogue.RuleInput(category="urban", lead_unit_id=unit_id(db, "441900000000")),  # city
        catalogue.RuleInput(category="urban", lead_is_town=True, town_unit_id=unit_id(db, URBAN)),
        catalogue.RuleInput(category="urban", lead_is_town=True, auto_threshold=0.2),
    ]:
        with pytest.raises(InvalidInput):
            catalogue.add_rule(db, ADMIN, bad)
    assert catalogue.version(db) == 0


def test_catalogue_api_and_page_follow_the_permissions(api: Api, db: Session) -> None:
    body = {"category": "urban", "lead_is_town": True, "auto_threshold": 0.95}
    assert api("dispatcher").post("/api/v1/dispatch/rules", json=body).status_code == 403
    created = api("admin").post("/api/v1/dispatch/rules", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["catalogue_version"] == 1
    listed = api("dispatcher").get("/api/v1/dispatch/rules").json()
    assert [r["category_name"] for r in listed] == ["城市管理"]
    assert api("dc.handler").get("/api/v1/dispatch/rules").status_code == 403
    bad = api("admin").post("/api/v1/dispatch/rules", json={"category": "urban"})
    assert bad.status_code == 400
    assert "主办单位" in bad.json()["error"]["message"]
    page = api("dispatcher").get("/hotline/dispatch")
    assert page.status_code == 200
    assert "派单目录" in page.text
    assert "所在镇街" in page.text
    assert "保存到派单目录" not in page.text  # dispatchers read, admins edit
    retired = api("admin").delete(f"/api/v1/dispatch/rules/{created.json()['id']}")
    assert retired.status_code == 200
    assert retired.json()["retired_at"]
    again = api("admin").delete(f"/api/v1/dispatch/rules/{created.json()['id']}")
    assert again.status_code == 409


# --- suggestions at intake ---------------------------------------------------------------


def test_without_a_model_the_place_is_found_and_a_person_dispatches(
    db: Session, config: HotlineConfig
) -> None:
    case, order = _register(
        db, config, "小区门口井盖缺失，很危险。", address="东莞市东城街道岗贝社区莞樟路 88 号"
    )
    row = db.get(DispatchSuggestion, case.id)
    assert row is not None
    assert case.status == "registered"
    assert row.auto is False
    assert row.held_reason == "尚无启用的派单模型"
    assert row.town_unit_id == unit_id(db, DONGCHENG)
    # The place fills the order's empty location (the village where it is known).
    assert order.location_unit_id in {row.village_unit_id, row.town_unit_id}
    assert order.content == "小区门口井盖缺失，很危险。"  # the original text is kept


def test_historical_imports_get_no_suggestion(db: Session, config: HotlineConfig) -> None:
    case, _ = _register(db, config, "东城街道路灯不亮", smart=False)
    assert db.get(DispatchSuggestion, case.id) is None


def _install_model(db: Session, config: HotlineConfig) -> DispatchModel:
    _history(db, config, texts(LIGHTS, 24), URBAN, "urban")
    _history(db, config, texts(WAGES, 24), LABOUR, "labour")
    report = training.retrain(db, ADMIN, min_orders=20, force=True)
    assert report.outcome == "promoted", report.message
    model = db.scalars(select(DispatchModel).where(DispatchModel.status == "active")).one()
    return model


def test_a_sure_proposal_is_dispatched_by_itself_and_explained(
    db: Session, config: HotlineConfig
) -> None:
    model = _install_model(db, config)
    catalogue.add_rule(
        db, ADMIN, catalogue.RuleInput(category="urban", lead_unit_id=unit_id(db, URBAN))
    )
    sure = HotlineConfig(
        config.number_prefix,
        config.work_periods,
        config.workflow_dir,
        suggest.DispatchPolicy(threshold=0.5),
    )
    case, _ = _register(
        db, sure, "东城街道岗贝社区的路灯坏了好几天，晚上一片漆黑，请尽快维修路灯。"
    )
    row = db.get(DispatchSuggestion, case.id)
    assert row is not None
    assert row.category == "urban"
    assert row.category_source == "model"
    assert row.auto is True, row.held_reason
    assert case.status == "dispatched"
    assert case.category == "urban"
    assert case.lead_unit_id == unit_id(db, URBAN)
    event = db.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.action == "dispatch")
    ).one()
    assert event.actor_name == "智能派单"
    explained = event.data["smart_dispatch"]
    assert explained["model_version"] == model.version
    assert explained["catalogue_version"] == 1
    assert explained["unit_source"] == "catalogue"
    assert 0.5 <= explained["category_confidence"] <= 1
    assert explained["reasons"]
    assert "路灯" in "".join(explained["reasons"])
    assert "智能派单：模型 v" in (event.note or "")


def test_emergencies_and_unsure_proposals_wait_for_a_person(
    db: Session, config: HotlineConfig
) -> None:
    _install_model(db, config)
    catalogue.add_rule(
        db, ADMIN, catalogue.RuleInput(category="urban", lead_unit_id=unit_id(db, URBAN))
    )
    loose = HotlineConfig(
        config.number_prefix,
        config.work_periods,
        config.workflow_dir,
        suggest.DispatchPolicy(threshold=0.5),
    )
    case, _ = _register(
        db, loose, "东城街道路灯坏了，晚上漆黑一片，请维修路灯。", urgency=Urgency.EMERGENCY
    )
    row = db.get(DispatchSuggestion, case.id)
    assert case.status == "registered"
    assert row is not None
    assert row.held_reason == "紧急工单由派单员人工派单"
    # The city-wide threshold of 1.0 can never be reached by a model.
    strict = HotlineConfig(
        config.number_prefix,
        config.work_periods,
        config.workflow_dir,
        suggest.DispatchPolicy(threshold=1.0),
    )
    case, _ = _register(db, strict, "东城街道路灯坏了，晚上漆黑一片，请维修路灯。")
    row = db.get(DispatchSuggestion, case.id)
    assert case.status == "registered"
    assert row is not None
    assert row.held_reason
    assert "低于自动派单阈值" in row.held_reason
    assert row.lead_unit_id == unit_id(db, URBAN)  # still suggested to the dispatcher


def test_the_dispatcher_sees_the_suggestion(api: Api, db: Session) -> None:
    body = {
        "requester_name": "陈先生",
        "requester_phone": "13800138000",
        "content": "小区门口井盖缺失，很危险。",
        "address": "东莞市东城街道岗贝社区莞樟路 88 号",
    }
    order = api("calltaker").post("/api/v1/orders", json=body).json()
    got = api("dispatcher").get(f"/api/v1/orders/{order['id']}/suggestion")
    assert got.status_code == 200, got.text
    assert got.json()["town"]["name"] == "东城街道"
    assert api("sj.handler").get(f"/api/v1/orders/{order['id']}/suggestion").status_code == 404
    page = api("dispatcher").get(f"/hotline/orders/{order['id']}")
    assert "智能派单建议" in page.text
    assert "东城街道" in page.text
    assert "尚无启用的派单模型" in page.text


# --- corrections are what the next model learns -------------------------------------------


def test_a_dispatchers_correction_flows_into_the_next_training(
    db: Session, config: HotlineConfig
) -> None:
    # The city's history sends factory noise to city management (urban).
    _history(db, config, texts(LIGHTS, 20), URBAN, "urban")
    _history(db, config, texts(WAGES, 20), LABOUR, "labour")
    _history(db, config, texts(NOISE, 20), URBAN, "urban")
    first = training.retrain(db, ADMIN, min_orders=20, force=True)
    assert first.outcome == "promoted"
    model = suggest.active_model(db)
    assert model is not None
    assert model.unit is not None
    assert model.category is not None
    probe = "东城街道某工厂半夜机器噪音很大，噪音污染严重，影响休息，请环保部门处理。"
    assert model.unit.predict_one(probe).label == URBAN

    # From now on dispatchers correct it: category environment, unit the ecology bureau,
    # after the urban bureau returns the order.
    environment = unit_id(db, ENVIRONMENT)
    for content in texts(NOISE, 24):
        case, _ = _register(db, config, content)
        row = db.get(DispatchSuggestion, case.id)
        assert row is not None
        assert row.lead_unit_id == unit_id(db, URBAN)  # the old habit
        if case.status == "registered":  # held for a person, who follows it
            _do(db, config, case, "dispatch", unit_id=unit_id(db, URBAN))
        assert case.lead_unit_id == unit_id(db, URBAN)
        _do(db, config, case, "return_order", note="不属于本单位职责")
        _do(db, config, case, "redispatch", unit_id=environment, category="environment")
        assert row.outcome == "corrected"
        assert row.final_unit_id == environment
        _close(db, config, case)

    learnt = training.examples(db)
    corrected = [e for e in learnt if e.unit == ENVIRONMENT]
    assert len(corrected) == 24
    assert {e.category for e in corrected} == {"environment"}

    second = training.retrain(db, ADMIN, min_orders=20)
    assert second.outcome == "promoted", second.message
    assert second.metrics["candidate_overall"] > second.metrics["incumbent_overall"]
    model = suggest.active_model(db)
    assert model is not None
    assert model.version == second.version
    assert model.unit is not None
    assert model.unit.predict_one(probe).label == ENVIRONMENT
    assert model.category is not None
    assert model.category.predict_one(probe).label == "environment"
    # The retired model and the decision stay on record.
    statuses = dict(db.execute(select(DispatchModel.version, DispatchModel.status)).all())
    assert statuses == {first.version: "retired", second.version: "active"}


def test_a_candidate_no_better_is_not_promoted(db: Session, config: HotlineConfig) -> None:
    _history(db, config, texts(LIGHTS, 20), URBAN, "urban")
    _history(db, config, texts(WAGES, 20), LABOUR, "labour")
    assert training.retrain(db, ADMIN, min_orders=20).outcome == "promoted"
    again = training.retrain(db, ADMIN, min_orders=20)
    assert again.outcome == "rejected"
    assert "不高于原模型" in again.message
    row = db.scalars(select(DispatchModel).where(DispatchModel.version == again.version)).one()
    assert row.status == "rejected"
    assert row.category_model is None


def test_too_little_history_is_skipped_not_failed(db: Session) -> None:
    report = training.retrain(db, ADMIN)
    assert report.outcome == "skipped"
    assert "少于训练所需" in report.message


def test_local_matters_are_learnt_as_the_town(db: Session, config: HotlineConfig) -> None:
    case, _ = _register(db, config, "东城街道岗贝社区垃圾堆放", smart=False)
    _do(db, config, case, "dispatch", unit_id=unit_id(db, DONGCHENG), category="urban")
    _close(db, config, case)
    assert training.examples(db)[-1].unit == TOWN


def test_retrain_is_queued_from_the_api_for_admins_only(api: Api, db: Session) -> None:
    assert api("dispatcher").post("/api/v1/dispatch/models/retrain").status_code == 403
    queued = api("admin").post("/api/v1/dispatch/models/retrain")
    assert queued.status_code == 202, queued.text
    assert uuid.UUID(queued.json()["job_id"])
    assert api("admin").get("/api/v1/dispatch/models").json() == []


def test_the_catalogue_form_refuses_a_bad_co_unit_instead_of_dropping_it(
    client: TestClient, db: Session
) -> None:
    csrf = login(client, "admin")
    form = {
        "csrf_token": csrf,
        "category": "urban",
        "town_unit_id": str(unit_id(db, DONGCHENG)),
        "lead": "town",
        "co_unit_ids": ["not-a-unit"],
    }
    response = post(client, "/hotline/dispatch/rules", form)
    assert response.status_code == 400
    assert "单位选择无效" in response.text
    assert catalogue.live_rules(db) == []


def test_retrain_learns_word_vectors_from_the_citys_orders_never_from_held_back_ones(
    db: Session, config: HotlineConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(features, "MIN_DOCUMENTS", 20)  # the templated orders are few
    fits: list[list[str]] = []
    real_fit = training._fit

    def spy(pairs: list[tuple[str, str]], unlabelled: list[str]) -> Any:
        fits.append(unlabelled)
        return real_fit(pairs, unlabelled)

    monkeypatch.setattr(training, "_fit", spy)
    _history(db, config, texts(LIGHTS, 24), URBAN, "urban")
    _history(db, config, texts(WAGES, 24), LABOUR, "labour")
    _register(db, config, "还没办结的工单：路灯又坏了，请维修。", smart=False)
    report = training.retrain(db, ADMIN, min_orders=20, force=True)
    assert report.outcome == "promoted", report.message
    every = set(training.corpus(db))
    assert len(every) == 49  # closed and open orders alike
    held = {e.text for e in training.examples(db)[report.n_train - report.n_holdout :]}
    candidate, promoted = fits[0], fits[2]
    assert not held & set(candidate)  # the candidate's vectors never saw the held-back
    assert set(promoted) == every
    row = db.scalars(select(DispatchModel).where(DispatchModel.status == "active")).one()
    model = TextClassifier.from_bytes(row.category_model or b"")
    assert model.meta["n_word_vectors"] > 0
