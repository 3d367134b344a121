"""Workflow definitions: parsed and checked from YAML, then immutable.

A definition names its states (with the stage clock that runs in each, or ``paused``),
its actions (allowed source states, target state, permission, whether a note is
required) and its time limits: ``limits[category][urgency][stage]`` where ``*`` matches
anything, written ``30m`` (minutes), ``4wh`` (working hours) or ``5wd`` (working days,
counted from the next day).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

LIMIT_PATTERN = re.compile(r"^(\d+)\s*(m|wh|wd)$")


class WorkflowError(ValueError):
    """A workflow file that cannot be used; the message says where."""


@dataclass(frozen=True)
class Limit:
    amount: int
    unit: str  # m | wh | wd

    @classmethod
    def parse(cls, text: str) -> Limit:
        match = LIMIT_PATTERN.match(str(text).strip())
        if not match:
            raise WorkflowError(f"时限格式应为 30m / 4wh / 5wd: {text!r}")
        return cls(int(match.group(1)), match.group(2))

    @property
    def label(self) -> str:
        unit = {"m": "分钟", "wh": "个工作小时", "wd": "个工作日"}[self.unit]
        return f"{self.amount}{unit}"


@dataclass(frozen=True)
class State:
    name: str
    label: str
    stage: str | None = None  # the clock that runs here
    paused: bool = False  # the stage clock stops here and resumes on leaving
    final: bool = False


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    sources: frozenset[str]
    target: str | None  # None: the status does not change (a note on the timeline)
    permission: str
    note_required: bool = False
    by_lead_unit: bool = False  # only people of the lead unit may take it


@dataclass(frozen=True)
class Workflow:
    case_type: str
    label: str
    initial: str
    warning_share: float
    states: dict[str, State]
    actions: dict[str, Action]
    limits: dict[str, dict[str, dict[str, Limit]]] = field(default_factory=dict)

    def state(self, name: str) -> State:
        return self.states[name]

    def action(self, name: str) -> Action:
        try:
            return self.actions[name]
        except KeyError:
            raise WorkflowError(f"unknown action {name!r} in {self.case_type}") from None

    def available(self, status: str) -> list[Action]:
        return [a for a in self.actions.values() if status in a.sources]

    def limit_for(self, category: str | None, urgency: str, stage: str) -> Limit | None:
        """The most specific limit. Urgency weighs more than category: an emergency
        complaint gets the emergency limits, not a complaint's five working days. Order:
        (category, urgency) > (*, urgency) > (category, *) > (*, *)."""
        for cat, urg in (
            (category or "*", urgency),
            ("*", urgency),
            (category or "*", "*"),
            ("*", "*"),
        ):
            limit = self.limits.get(cat, {}).get(urg, {}).get(stage)
            if limit is not None:
                return limit
        return None


def parse_workflow(raw: dict[str, Any]) -> Workflow:
    """Build and check a workflow from its YAML mapping."""
    try:
        states = {
            name: State(
                name=name,
                label=str(spec["label"]),
                stage=spec.get("stage"),
                paused=bool(spec.get("paused", False)),
                final=bool(spec.get("final", False)),
            )
            for name, spec in raw["states"].items()
        }
        actions = {
            name: Action(
                name=name,
                label=str(spec["label"]),
                sources=frozenset(spec["from"]),
                target=spec.get("to"),
                permission=str(spec["permission"]),
                note_required=bool(spec.get("note_required", False)),
                by_lead_unit=bool(spec.get("by_lead_unit", False)),
            )
            for name, spec in raw["actions"].items()
        }
        limits = {
            str(cat): {
                str(urg): {str(stage): Limit.parse(v) for stage, v in stages.items()}
                for urg, stages in by_urgency.items()
            }
            for cat, by_urgency in (raw.get("limits") or {}).items()
        }
        workflow = Workflow(
            case_type=str(raw["case_type"]),
            label=str(raw["label"]),
            initial=str(raw["initial"]),
            warning_share=float(raw.get("warning_share", 0.8)),
            states=states,
            actions=actions,
            limits=limits,
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise WorkflowError(f"workflow file is missing or misshapes {exc}") from exc
    _check(workflow)
    return workflow


def _check(workflow: Workflow) -> None:
    if workflow.initial not in workflow.states:
        raise WorkflowError(f"initial state {workflow.initial!r} is not a state")
    if not 0 < workflow.warning_share < 1:
        raise WorkflowError("warning_share must lie between 0 and 1")
    for action in workflow.actions.values():
        unknown = set(action.sources) - set(workflow.states)
        if action.target is not None:
            unknown |= {action.target} - set(workflow.states)
        if unknown:
            raise WorkflowError(f"action {action.name!r} names unknown states {sorted(unknown)}")
        if any(workflow.states[s].final for s in action.sources):
            raise WorkflowError(f"action {action.name!r} leaves a final state")
    for state in workflow.states.values():
        if state.paused and state.stage is None:
            raise WorkflowError(f"paused state {state.name!r} must name the stage it pauses")


_cache: dict[tuple[str, str | None], Workflow] = {}


def load_workflow(case_type: str, override_dir: Path | None = None) -> Workflow:
    """The packaged workflow, or the city's copy in ``override_dir/<case_type>.yaml``."""
    key = (case_type, str(override_dir) if override_dir else None)
    if key in _cache:
        return _cache[key]
    custom = override_dir / f"{case_type}.yaml" if override_dir else None
    if custom is not None and custom.exists():
        text = custom.read_text("utf-8")
    else:
        text = (
            resources.files("zhengshu.casework")
            .joinpath(f"workflows/{case_type}.yaml")
            .read_text("utf-8")
        )
    workflow = parse_workflow(yaml.safe_load(text))
    _cache[key] = workflow
    return workflow
