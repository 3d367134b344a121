"""Use cases of 12345 work orders, on the case engine.

Each takes ``session`` and ``actor`` first and a ``HotlineConfig``; validates, checks
the workflow and jurisdiction, writes, audits (through the engine) and never commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from zhengshu.casework import engine
from zhengshu.casework.definitions import Limit, Workflow, load_workflow
from zhengshu.casework.engine import Move
from zhengshu.casework.models import Case, CaseEvent
from zhengshu.kernel import audit, clock
from zhengshu.kernel.authz import Principal, system_principal
from zhengshu.kernel.calendar import WorkCalendar
from zhengshu.kernel.calendar_store import load_calendar
from zhengshu.kernel.errors import Conflict, InvalidInput, not_found
from zhengshu.kernel.settings import Settings, parse_work_periods
from zhengshu.modules.hotline import repository
from zhengshu.modules.hotline.catalogue import categories
from zhengshu.modules.hotline.dispatch import suggest
from zhengshu.modules.hotline.dispatch.suggest import DispatchPolicy, Proposal
from zhengshu.modules.hotline.enums import Satisfaction
from zhengshu.modules.hotline.insight import alert_scan
from zhengshu.modules.hotline.models import Order
from zhengshu.modules.hotline.schemas import ActionRequest, OrderCreate
from zhengshu.org import repository as org_repository
from zhengshu.org.models import Unit
from zhengshu.org.roles import TOWN_LEVEL, VILLAGE_LEVEL, UnitKind

CASE_TYPE = "hotline"
# After this many reworks an order goes to formal supervision (督办).
REWORK_SUPERVISION_THRESHOLD = 3


@dataclass(frozen=True)
class HotlineConfig:
    number_prefix: str
    work_periods: list[tuple[int, int]]
    workflow_dir: Path | None = None
    dispatch: DispatchPolicy = field(default_factory=DispatchPolicy)
    # The city's own extreme-event word list, when it has one (else the built-in list).
    extreme_words: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> HotlineConfig:
        return cls(
            number_prefix=settings.city_prefix,
            work_periods=parse_work_periods(settings.work_periods),
            workflow_dir=settings.data_dir / "workflows",
            dispatch=DispatchPolicy(
                auto=settings.dispatch_auto,
                threshold=settings.dispatch_auto_threshold,
                geo_threshold=settings.dispatch_geo_threshold,
            ),
            extreme_words=settings.data_dir / "extreme_words.yaml",
        )

    def workflow(self) -> Workflow:
        return load_workflow(CASE_TYPE, self.workflow_dir)

    def calendar(self, session: Session) -> WorkCalendar:
        return load_calendar(session, self.work_periods)


def check_intake(session: Session, actor: Principal, data: OrderCreate) -> None:
    """What registering ``data`` needs before anything is written: the right to take
    requests in (``hotline:order:register`` or ``hotline:order:push``) and a location, if
    given, that is a town or village unit."""
    if not (actor.can("hotline:order:register") or actor.can("hotline:order:push")):
        actor.require("hotline:order:register")
    if data.location_unit_id is not None:
        location = session.get(Unit, data.location_unit_id)
        if location is None or UnitKind(location.kind) not in TOWN_LEVEL | VILLAGE_LEVEL:
            raise InvalidInput(
                "所属镇街/村居无效", "location must be a town or village unit", code="bad_location"
            )


def register_order(
    session: Session,
    actor: Principal,
    *,
    config: HotlineConfig,
    data: OrderCreate,
    source_token_id: uuid.UUID | None = None,
    smart: bool = True,
    point: tuple[float, float] | None = None,
    received_at: datetime | None = None,
    note: str | None = None,
) -> tuple[Case, Order]:
    """受理: take a request in from any channel. ``hotline:order:register`` (call-takers)
    or ``hotline:order:push`` (partner systems such as the 110 platform). Opens the case
    with its dispatch clock running; audited; emergencies get the shortest limits.

    With ``smart`` (all live channels; not the historical import) smart dispatch
    proposes the category, the place and the units (``dispatch.suggest``): the place
    fills an empty location, the category an "other" one when the model is sure, and a
    proposal sure in every part is carried out at once as a dispatch by "智能派单", with
    the model version, confidences and reasons on the timeline. With ``smart`` too, the
    title and content are scanned for extreme events (跳楼, 持刀, 爆炸, 聚集 ...): a hit
    raises an immediate early warning linked to the order and notes it on the timeline
    (``insight.alert_scan.on_intake``). ``received_at``: when a request accepted on the
    fast lane (``intake``) was taken in; its clocks run from then. ``note``: said on the
    受理 entry of the timeline (how the request came in, when not the usual way)."""
    check_intake(session, actor, data)
    title = data.title or _title_of(data.content)
    proposal: Proposal | None = None
    if smart:
        proposal = suggest.propose(
            session,
            policy=config.dispatch,
            title=title,
            content=data.content,
            category=None if data.category == "other" else data.category,
            urgency=data.urgency.value,
            address=data.address,
            location_unit_id=data.location_unit_id,
            lat=point[0] if point else None,
            lon=point[1] if point else None,
        )
    category = data.category
    if (
        proposal is not None
        and proposal.category_source == "model"
        and (proposal.category_confidence or 0.0) >= config.dispatch.threshold
    ):
        category = proposal.category or category
    case = engine.open_case(
        session,
        actor,
        workflow=config.workflow(),
        calendar=config.calendar(session),
        number_prefix=config.number_prefix,
        title=title,
        request_type=data.request_type.value,
        urgency=data.urgency.value,
        category=category,
        data={"channel": data.channel.value, "external_ref": data.external_ref},
        received_at=received_at,
        note=note,
    )
    order = Order(
        id=case.id,
        channel=data.channel.value,
        requester_name=data.requester_name,
        requester_phone=data.requester_phone,
        requester_id_number=data.requester_id_number,
        address=data.address,
        location_unit_id=data.location_unit_id
        or (proposal.location.id if proposal is not None and proposal.location else None),
        content=data.content,
        external_ref=data.external_ref,
        source_token_id=source_token_id,
    )
    session.add(order)
    session.flush()
    if proposal is not None:
        suggest.store(session, case.id, proposal)
        if proposal.auto and proposal.lead is not None:
            _auto_dispatch(session, config, case, proposal)
    if smart:
        alert_scan.on_intake(session, case, order, words=config.extreme_words)
    return case, order


def _auto_dispatch(session: Session, config: HotlineConfig, case: Case, proposal: Proposal) -> None:
    """Carry out a sure proposal: the same dispatch a person makes, by 智能派单."""
    assert proposal.lead is not None
    reasons = "、".join(proposal.reasons[:5])
    note = (
        f"智能派单：模型 v{proposal.model_version}，置信度 {proposal.unit_confidence or 0:.2f}"
        + (f"，依据：{reasons}" if reasons else "")
    )
    _send(
        session,
        system_principal("智能派单"),
        case,
        config.workflow(),
        config.calendar(session),
        ActionRequest(
            note=note[:2000],
            unit_id=proposal.lead.id,
            co_unit_ids=[u.id for u in proposal.co_units],
        ),
        "dispatch",
        explanation=proposal.explanation(),
    )


def _title_of(content: str) -> str:
    first = content.strip().splitlines()[0]
    return first[:30] + ("…" if len(first) > 30 else "")


def act(
    session: Session,
    actor: Principal,
    *,
    config: HotlineConfig,
    order_id: uuid.UUID,
    action: str,
    request: ActionRequest,
) -> CaseEvent:
    """Take one workflow action on an order the actor can see. The workflow decides the
    allowed states and permission; this adds what each action means for a work order."""
    case, order = repository.get_order(session, actor, order_id)
    workflow, calendar = config.workflow(), config.calendar(session)
    # The state is checked before anything the body carries, so a wrong-state request is
    # always a 409 whatever else is wrong with it. "callback" is close-or-rework.
    engine_action = "close" if action == "callback" else action
    if engine_action not in workflow.actions:
        raise not_found("操作", "action")
    if request.version is not None and request.version != case.version:
        # A stale page says so, whatever state the order has moved on to.
        raise Conflict(
            "工单已被他人处理，请刷新后重试", "the order changed; reload", code="stale_version"
        )
    engine.check_state(workflow, case, engine_action)
    # Permission before the body: a handler posting a bad unit is refused, not corrected.
    actor.require(workflow.action(engine_action).permission)
    handler = _ACTIONS.get(action)
    if handler is None:
        return engine.transition(
            session, actor, case, action, workflow=workflow, calendar=calendar, move=_plain(request)
        )
    return handler(session, actor, case, order, workflow, calendar, request)


def _plain(request: ActionRequest, **extra: Any) -> Move:
    return Move(note=request.note, expected_version=request.version, **extra)


def _unit(session: Session, unit_id: uuid.UUID | None) -> Unit:
    if unit_id is None:
        raise InvalidInput("请选择承办单位", "choose a handling unit", code="unit_required")
    unit = session.get(Unit, unit_id)
    if unit is None or not unit.active:
        raise InvalidInput("承办单位不存在或已停用", "unknown or inactive unit", code="bad_unit")
    if UnitKind(unit.kind) is UnitKind.CITY:
        raise InvalidInput(
            "不能派给市本级，请选择部门或镇街", "dispatch to a department or town", code="bad_unit"
        )
    return unit


def _dispatch(
    session: Session,
    actor: Principal,
    case: Case,
    order: Order,
    workflow: Workflow,
    calendar: WorkCalendar,
    request: ActionRequest,
) -> CaseEvent:
    return _send(session, actor, case, workflow, calendar, request, "dispatch")


def _redispatch(
    session: Session,
    actor: Principal,
    case: Case,
    order: Order,
    workflow: Workflow,
    calendar: WorkCalendar,
    request: ActionRequest,
) -> CaseEvent:
    return _send(session, actor, case, workflow, calendar, request, "redispatch")


def _send(
    session: Session,
    actor: Principal,
    case: Case,
    workflow: Workflow,
    calendar: WorkCalendar,
    request: ActionRequest,
    action: str,
    explanation: dict[str, Any] | None = None,
) -> CaseEvent:
    lead = _unit(session, request.unit_id)
    co = [_unit(session, uid) for uid in request.co_unit_ids]
    data: dict[str, Any] = {"lead_unit": lead.name, "co_units": [u.name for u in co]}
    category = None
    if request.category is not None and request.category != case.category:
        if request.category not in categories():
            raise InvalidInput("未知的诉求类别", "unknown category", code="bad_category")
        # The dispatcher's correction of the category: what the next training learns.
        data["category"] = {"from": case.category, "to": request.category}
        category = request.category
    if explanation is not None:
        data["smart_dispatch"] = explanation
    suggest.record_outcome(session, case.id, lead.id)
    return engine.transition(
        session,
        actor,
        case,
        action,
        workflow=workflow,
        calendar=calendar,
        move=_plain(
            request,
            lead_unit=lead,
            co_units=co,
            restart_clock=True,
            data=data,
            category=category,
        ),
    )


def _pass_down(
    session: Session,
    actor: Principal,
    case: Case,
    order: Order,
    workflow: Workflow,
    calendar: WorkCalendar,
    request: ActionRequest,
) -> CaseEvent:
    """A town passes its order on to one of its villages / communities (or offices)."""
    target = _unit(session, request.unit_id)
    current = session.get(Unit, case.lead_unit_id) if case.lead_unit_id else None
    if current is None or target.parent_id != current.id:
        raise InvalidInput(
            "只能下派给本单位的下级村（社区）或内设机构",
            "pass down only to a unit directly below the lead unit",
            code="bad_unit",
        )
    return engine.transition(
        session,
        actor,
        case,
        "pass_down",
        workflow=workflow,
        calendar=calendar,
        # The village takes over inside the town's handling time: the clock runs on.
        move=_plain(request, lead_unit=target, data={"lead_unit": target.name}),
    )


def _extension(
    session: Session,
    actor: Principal,
    case: Case,
    order: Order,
    workflow: Workflow,
    calendar: WorkCalendar,
    request: ActionRequest,
) -> CaseEvent:
    if not request.extension:
        raise InvalidInput(
            "请填写延期时长，如 3wd（3 个工作日）",
            "extension required, e.g. 3wd",
            code="extension_required",
        )
    extra = Limit.parse(request.extension)
    return engine.transition(
        session,
        actor,
        case,
        "request_extension",
        workflow=workflow,
        calendar=calendar,
        move=_plain(request, data={"extension": request.extension, "label": extra.label}),
    )


def _approve_extension(
    session: Session,
    actor: Principal,
    case: Case,
    order: Order,
    workflow: Workflow,
    calendar: WorkCalendar,
    request: ActionRequest,
) -> CaseEvent:
    asked = _requested_extension(session, case)
    extra = Limit.parse(request.extension) if request.extension else asked
    if extra is None:
        raise InvalidInput("找不到延期申请", "no extension request found")
    return engine.transition(
        session,
        actor,
        case,
        "approve_extension",
        workflow=workflow,
        calendar=calendar,
        move=_plain(
            request,
            extension=extra,
            data={"extension": f"{extra.amount}{extra.unit}", "label": extra.label},
        ),
    )


def _requested_extension(session: Session, case: Case) -> Limit | None:
    for event, _ in reversed(repository.timeline(session, case.id)):
        if event.action == "request_extension" and event.data:
            return Limit.parse(str(event.data["extension"]))
    return None


def _reply(
    session: Session,
    actor: Principal,
    case: Case,
    order: Order,
    workflow: Workflow,
    calendar: WorkCalendar,
    request: ActionRequest,
) -> CaseEvent:
    event = engine.transition(
        session, actor, case, "reply", workflow=workflow, calendar=calendar, move=_plain(request)
    )
    order.reply_text, order.replied_at = request.note, clock.now()
    return event


def _answer(
    session: Session,
    actor: Principal,
    case: Case,
    order: Order,
    workflow: Workflow,
    calendar: WorkCalendar,
    request: ActionRequest,
) -> CaseEvent:
    event = engine.transition(
        session,
        actor,
        case,
        "answer_directly",
        workflow=workflow,
        calendar=calendar,
        move=_plain(request),
    )
    order.answer = request.note
    return event


def _callback_result(request: ActionRequest) -> tuple[bool, Satisfaction]:
    if request.solved is None or request.satisfaction is None:
        raise InvalidInput(
            "回访须记录是否解决和满意度",
            "callback needs solved and satisfaction",
            code="callback_incomplete",
        )
    return request.solved, request.satisfaction


def _callback(
    session: Session,
    actor: Principal,
    case: Case,
    order: Order,
    workflow: Workflow,
    calendar: WorkCalendar,
    request: ActionRequest,
) -> CaseEvent:
    """回访: "solved?" is asked apart from satisfaction on the five-level scale; solved and
    at least basically satisfied closes the order, anything else sends it back (重办)."""
    solved, satisfaction = _callback_result(request)
    if solved and satisfaction.counts_as_satisfied:
        return _close(session, actor, case, order, workflow, calendar, request)
    return _rework(session, actor, case, order, workflow, calendar, request)


def _record_callback(order: Order, solved: bool, satisfaction: Satisfaction) -> dict[str, Any]:
    order.solved, order.satisfaction = solved, satisfaction.value
    order.called_back_at = clock.now()
    return {"solved": solved, "satisfaction": satisfaction.value}


def _close(
    session: Session,
    actor: Principal,
    case: Case,
    order: Order,
    workflow: Workflow,
    calendar: WorkCalendar,
    request: ActionRequest,
) -> CaseEvent:
    """回访办结: refused when the recorded answer says unsolved or dissatisfied."""
    solved, satisfaction = _callback_result(request)
    if not (solved and satisfaction.counts_as_satisfied):
        raise InvalidInput(
            "未解决或不满意的工单应重办，不能办结",
            "an unsolved or dissatisfied callback sends the order back (rework)",
            code="callback_contradicts",
        )
    data = _record_callback(order, solved, satisfaction)
    return engine.transition(
        session,
        actor,
        case,
        "close",
        workflow=workflow,
        calendar=calendar,
        move=_plain(request, data=data),
    )


def _rework(
    session: Session,
    actor: Principal,
    case: Case,
    order: Order,
    workflow: Workflow,
    calendar: WorkCalendar,
    request: ActionRequest,
) -> CaseEvent:
    """重办: back to the unit with a fresh handling clock; after three reworks the order
    goes to formal supervision (督办)."""
    solved, satisfaction = _callback_result(request)
    if solved and satisfaction.counts_as_satisfied:
        raise InvalidInput(
            "已解决且满意的工单应办结，不能重办",
            "a solved and satisfied callback closes the order",
            code="callback_contradicts",
        )
    data = _record_callback(order, solved, satisfaction)
    event = engine.transition(
        session,
        actor,
        case,
        "rework",
        workflow=workflow,
        calendar=calendar,
        move=_plain(request, data={**data, "rework": case.rework_count + 1}, count_rework=True),
    )
    if case.rework_count >= REWORK_SUPERVISION_THRESHOLD:
        engine.open_supervision(
            session,
            actor,
            case,
            calendar=calendar,
            kind="supervise",
            level=max(1, case.escalation_level + 1),
            reason=f"已重办 {case.rework_count} 次",
        )
    return event


def _transfer(
    session: Session,
    actor: Principal,
    case: Case,
    order: Order,
    workflow: Workflow,
    calendar: WorkCalendar,
    request: ActionRequest,
) -> CaseEvent:
    if request.target is None:
        raise InvalidInput(
            "请选择移交对象 110 / 119 / 120", "choose 110, 119 or 120", code="target_required"
        )
    event = engine.transition(
        session,
        actor,
        case,
        "transfer_emergency",
        workflow=workflow,
        calendar=calendar,
        move=_plain(request, data={"target": request.target.value}),
    )
    order.transferred_to = request.target.value
    return event


def _merge(
    session: Session,
    actor: Principal,
    case: Case,
    order: Order,
    workflow: Workflow,
    calendar: WorkCalendar,
    request: ActionRequest,
) -> CaseEvent:
    """并单: a duplicate follows its parent's handling and is answered with it."""
    if not request.parent_number:
        raise InvalidInput(
            "请填写主工单编号", "parent order number required", code="parent_required"
        )
    parent_case, _ = repository.get_by_number(session, actor, request.parent_number)
    if parent_case.id == case.id or parent_case.parent_id is not None:
        raise InvalidInput(
            "不能并入自身或已被合并的工单",
            "cannot merge into itself or a merged order",
            code="bad_parent",
        )
    if workflow.state(parent_case.status).final:
        raise Conflict("主工单已办结，不能并入", "the parent order is finished", code="wrong_state")
    case.parent_id = parent_case.id
    event = engine.transition(
        session,
        actor,
        case,
        "merge",
        workflow=workflow,
        calendar=calendar,
        move=_plain(request, data={"parent": parent_case.number}),
    )
    engine.add_note(
        session,
        actor,
        parent_case,
        action="merged_in",
        label="并入重复工单",
        data={"child": case.number},
    )
    return event


def _supervise(
    session: Session,
    actor: Principal,
    case: Case,
    order: Order,
    workflow: Workflow,
    calendar: WorkCalendar,
    request: ActionRequest,
) -> CaseEvent:
    """督办 by hand: formal supervision with its own deadline (one working day)."""
    event = engine.transition(
        session,
        actor,
        case,
        "supervise",
        workflow=workflow,
        calendar=calendar,
        move=_plain(request),
    )
    engine.open_supervision(
        session,
        actor,
        case,
        calendar=calendar,
        kind="supervise",
        level=max(1, case.escalation_level),
        reason=request.note or "督办",
        note_event=False,
    )
    return event


def _urge(
    session: Session,
    actor: Principal,
    case: Case,
    order: Order,
    workflow: Workflow,
    calendar: WorkCalendar,
    request: ActionRequest,
) -> CaseEvent:
    """催办: a reminder to the lead unit, kept as an open item until the stage moves on."""
    event = engine.transition(
        session, actor, case, "urge", workflow=workflow, calendar=calendar, move=_plain(request)
    )
    engine.open_supervision(
        session,
        actor,
        case,
        calendar=calendar,
        kind="urge",
        level=1,
        reason=request.note or "催办",
        note_event=False,
    )
    return event


_ACTIONS = {
    "supervise": _supervise,
    "urge": _urge,
    "dispatch": _dispatch,
    "redispatch": _redispatch,
    "pass_down": _pass_down,
    "request_extension": _extension,
    "approve_extension": _approve_extension,
    "reply": _reply,
    "answer_directly": _answer,
    "callback": _callback,
    "close": _close,
    "rework": _rework,
    "transfer_emergency": _transfer,
    "merge": _merge,
}


def reveal(session: Session, actor: Principal, *, order_id: uuid.UUID) -> Order:
    """Show a requester's full phone and ID number: ``hotline:requester:reveal``; every
    reveal is an audit row and a timeline entry."""
    actor.require("hotline:requester:reveal")
    case, order = repository.get_order(session, actor, order_id)
    engine.add_note(session, actor, case, action="reveal", label="查看诉求人完整信息")
    audit.record(
        session,
        actor,
        "hotline.reveal",
        entity_type="case",
        entity_id=case.id,
        after={"fields": ["requester_phone", "requester_id_number"]},
    )
    return order


def available_actions(
    session: Session, actor: Principal, case: Case, workflow: Workflow
) -> list[str]:
    """The actions this actor could take now (for buttons; the engine re-checks)."""
    lead = engine.lead_path(session, case)
    names = []
    for action in workflow.available(case.status):
        if not actor.can(action.permission):
            continue
        if action.by_lead_unit and not actor.covers(lead):
            continue
        names.append(action.name)
    return names


def default_unit(session: Session, category: str | None) -> Unit | None:
    """The department that usually leads on a category (the dispatcher's first guess)."""
    info = categories().get(category or "")
    if info is None or info.unit_code is None:
        return None
    return org_repository.unit_by_code(session, info.unit_code)
