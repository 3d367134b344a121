"""Learning from the city's own closed orders, and promoting only what is better.

The training set is every closed 12345 order: its text (title and content), its final
category and its final lead unit: a department by its code, or ``TOWN`` when a town or
one of its villages handled it (the town is then found from the address). Corrections
need no separate bookkeeping: a return (退单) and re-dispatch (改派), or a category a
dispatcher changed, leave the order's final unit and category as the person decided, and
that is what the next run learns.

The texts of the city's recent orders, open ones included (up to ``CORPUS_MAX``), teach the
models' word vectors (``features.WordVectors``) once there are enough of them; the
candidate's vectors never see the held-back orders.

A retrain holds back the most recent share of the history (by closing time), trains a
candidate on the rest, and scores candidate and active model on the held-back orders.
Only a candidate that scores better is promoted; it is then refitted on the whole
history. Every run leaves a ``DispatchModel`` row with both scores, and an audit row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zhengshu.casework.models import Case
from zhengshu.kernel import audit, clock
from zhengshu.kernel.authz import Principal, system_principal
from zhengshu.kernel.errors import InvalidInput
from zhengshu.modules.hotline.catalogue import code_for
from zhengshu.modules.hotline.dispatch.catalogue import require_configure
from zhengshu.modules.hotline.dispatch.models import TOWN, DispatchModel
from zhengshu.modules.hotline.models import Order
from zhengshu.org.models import Unit
from zhengshu.org.roles import TOWN_LEVEL, VILLAGE_LEVEL

if TYPE_CHECKING:  # scikit-learn is imported when a model is trained, not at start-up
    from zhengshu.modules.hotline.dispatch.classifier import TextClassifier

MIN_ORDERS = 40
CORPUS_MAX = 20_000  # recent order texts the word vectors learn from
HOLDOUT_SHARE = 0.2
LOCAL_KINDS = {k.value for k in TOWN_LEVEL | VILLAGE_LEVEL}


@dataclass(frozen=True)
class Example:
    text: str
    category: str | None
    unit: str | None


@dataclass
class RetrainReport:
    outcome: str  # promoted | rejected | skipped
    message: str
    version: int | None = None
    n_train: int = 0
    n_holdout: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "message": self.message,
            "version": self.version,
            "n_train": self.n_train,
            "n_holdout": self.n_holdout,
            "metrics": self.metrics,
        }


def examples(session: Session) -> list[Example]:
    """Closed orders, oldest first, with what a person finally decided."""
    rows = session.execute(
        select(Case.title, Order.content, Case.category, Unit.kind, Unit.code)
        .join(Order, Order.id == Case.id)
        .outerjoin(Unit, Unit.id == Case.lead_unit_id)
        .where(Case.case_type == "hotline", Case.status == "closed")
        .order_by(Case.closed_at, Case.number)
    ).all()
    found = []
    for title, content, category, kind, code in rows:
        unit = None if kind is None else (TOWN if kind in LOCAL_KINDS else code)
        found.append(
            Example(
                text=f"{title}\n{content}",
                category=category if category and category != "other" else None,
                unit=unit,
            )
        )
    return found


def corpus(session: Session) -> list[str]:
    """Texts of the most recent orders (any state), for the word vectors."""
    rows = session.execute(
        select(Case.title, Order.content)
        .join(Order, Order.id == Case.id)
        .where(Case.case_type == "hotline")
        .order_by(Case.created_at.desc())
        .limit(CORPUS_MAX)
    ).all()
    return [f"{title}\n{content}" for title, content in rows]


def _fit(pairs: list[tuple[str, str]], unlabelled: list[str]) -> TextClassifier | None:
    from zhengshu.modules.hotline.dispatch.classifier import TextClassifier

    if len({label for _, label in pairs}) < 2:
        return None
    return TextClassifier(self_training=False).fit(
        [t for t, _ in pairs], [label for _, label in pairs], unlabelled=unlabelled
    )


def _pairs(rows: list[Example], attr: str) -> list[tuple[str, str]]:
    return [(e.text, getattr(e, attr)) for e in rows if getattr(e, attr)]


def _score(model: TextClassifier | None, pairs: list[tuple[str, str]]) -> float | None:
    """Macro-F1 on held-back pairs; labels the model never learned count as misses."""
    if model is None or not pairs:
        return None
    from zhengshu.modules.hotline.dispatch.classifier import evaluate

    result = evaluate(model, [t for t, _ in pairs], [label for _, label in pairs])
    return float(result["macro_f1"])


def _overall(scores: dict[str, float | None]) -> float:
    known = [s for s in scores.values() if s is not None and not math.isnan(s)]
    return sum(known) / len(known) if known else 0.0


def retrain(
    session: Session,
    actor: Principal,
    *,
    min_orders: int = MIN_ORDERS,
    holdout_share: float = HOLDOUT_SHARE,
    force: bool = False,
) -> RetrainReport:
    """Train a candidate from closed orders; promote it if it beats the active model on
    the most recent orders (``force`` promotes regardless, e.g. for the first model)."""
    require_configure(session, actor)
    history = examples(session)
    if len(history) < min_orders:
        return RetrainReport(
            "skipped", f"已办结工单 {len(history)} 件，少于训练所需的 {min_orders} 件"
        )
    cut = max(1, int(len(history) * (1 - holdout_share)))
    train, held = history[:cut], history[cut:]
    texts = corpus(session)
    held_texts = {e.text for e in held}
    unseen = [t for t in texts if t not in held_texts]  # the candidate's vectors
    candidate = {
        "category": _fit(_pairs(train, "category"), unseen),
        "unit": _fit(_pairs(train, "unit"), unseen),
    }
    if candidate["category"] is None and candidate["unit"] is None:
        return RetrainReport("skipped", "训练数据中的类别和承办单位都少于两种")
    from zhengshu.modules.hotline.dispatch.classifier import TextClassifier

    incumbent_row = session.scalars(
        select(DispatchModel).where(DispatchModel.status == "active")
    ).one_or_none()
    incumbent = {
        "category": TextClassifier.from_bytes(incumbent_row.category_model)
        if incumbent_row is not None and incumbent_row.category_model
        else None,
        "unit": TextClassifier.from_bytes(incumbent_row.unit_model)
        if incumbent_row is not None and incumbent_row.unit_model
        else None,
    }
    candidate_scores = {k: _score(m, _pairs(held, k)) for k, m in candidate.items()}
    incumbent_scores = {k: _score(m, _pairs(held, k)) for k, m in incumbent.items()}
    cand, inc = _overall(candidate_scores), _overall(incumbent_scores)
    promote = force or incumbent_row is None or cand > inc
    now = clock.now()
    version = int(session.scalar(select(func.max(DispatchModel.version))) or 0) + 1
    metrics = {
        "holdout_share": holdout_share,
        "candidate": candidate_scores,
        "incumbent": incumbent_scores,
        "candidate_overall": round(cand, 4),
        "incumbent_overall": round(inc, 4),
        "incumbent_version": incumbent_row.version if incumbent_row is not None else None,
    }
    row = DispatchModel(
        version=version,
        status="rejected",
        source=f"已办结工单 {len(history)} 件",
        n_train=len(train),
        n_holdout=len(held),
        metrics=metrics,
        created_at=now,
        created_by=actor.name,
    )
    message = f"新模型 v{version} 未启用：留出集得分 {cand:.3f} 不高于原模型 {inc:.3f}"
    if promote:
        # The promoted model learns from everything, the recent orders included.
        category = _fit(_pairs(history, "category"), texts)
        unit = _fit(_pairs(history, "unit"), texts)
        if incumbent_row is not None:
            incumbent_row.status = "retired"
        row.status, row.n_train, row.promoted_at = "active", len(history), now
        row.category_model = category.to_bytes() if category else None
        row.unit_model = unit.to_bytes() if unit else None
        message = f"新模型 v{version} 已启用：留出集得分 {cand:.3f}（原模型 {inc:.3f}）"
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "hotline.dispatch.model.promote" if promote else "hotline.dispatch.model.reject",
        entity_type="dispatch_model",
        entity_id=row.id,
        after={"version": version, **metrics},
    )
    return RetrainReport(
        "promoted" if promote else "rejected",
        message,
        version=version,
        n_train=row.n_train,
        n_holdout=len(held),
        metrics=metrics,
    )


def install(
    session: Session,
    actor: Principal,
    *,
    category_model: TextClassifier | None,
    unit_model: TextClassifier | None,
    source: str,
) -> DispatchModel:
    """Make a model trained elsewhere (``zhengshu dispatch train``) the active one. Its
    category labels must be the city's category codes."""
    require_configure(session, actor)
    label_map: dict[str, str] = {}
    if category_model is not None:
        label_map = {label: code_for(label) or "" for label in category_model.labels}
        unknown = sorted(label for label, code in label_map.items() if not code)
        if unknown:
            raise InvalidInput(
                f"模型中的类别不在本市类别表中：{'、'.join(unknown[:5])}",
                f"the model's labels are not category codes: {unknown[:5]}",
                code="bad_labels",
            )
    trained = category_model or unit_model
    now = clock.now()
    for old in session.scalars(select(DispatchModel).where(DispatchModel.status == "active")):
        old.status = "retired"
    row = DispatchModel(
        version=int(session.scalar(select(func.max(DispatchModel.version))) or 0) + 1,
        status="active",
        source=source[:200],
        n_train=int(trained.meta.get("n_train", 0)) if trained is not None else 0,
        n_holdout=0,
        metrics={"label_map": label_map},
        category_model=category_model.to_bytes() if category_model else None,
        unit_model=unit_model.to_bytes() if unit_model else None,
        created_at=now,
        created_by=actor.name,
        promoted_at=now,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "hotline.dispatch.model.install",
        entity_type="dispatch_model",
        entity_id=row.id,
        after={"version": row.version, "source": row.source},
    )
    return row


JOB = "hotline.dispatch.retrain"


def job_handler(session: Session, payload: dict[str, Any]) -> None:
    """The ``hotline.dispatch.retrain`` job (queued from the page or the API)."""
    by = str(payload.get("by", ""))[:100]
    retrain(session, system_principal(f"派单模型训练（{by}）" if by else "派单模型训练"))


def scheduled(session: Session) -> None:
    """The weekly retrain (``tasks.build_registry``)."""
    retrain(session, system_principal("派单模型定期训练"))
