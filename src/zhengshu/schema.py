"""Every table of zhengshu, gathered: what Alembic compares migrations against."""

from __future__ import annotations

from sqlalchemy import MetaData

from zhengshu.casework import models as casework_models
from zhengshu.kernel import audit, calendar_store, idempotency, jobs
from zhengshu.kernel.db import Base
from zhengshu.modules.hotline import models as hotline_models
from zhengshu.modules.hotline.dispatch import models as dispatch_models
from zhengshu.modules.hotline.insight import alert_models, issue_models
from zhengshu.modules.hotline.reports import models as report_models
from zhengshu.org import models as org_models

MODEL_MODULES = (
    audit,
    calendar_store,
    idempotency,
    jobs,
    org_models,
    casework_models,
    hotline_models,
    dispatch_models,
    report_models,
    alert_models,
    issue_models,
)


def metadata() -> MetaData:
    return Base.metadata
