"""Every table of zhengshu, gathered: what Alembic compares migrations against."""

from __future__ import annotations

from sqlalchemy import MetaData

from zhengshu.kernel import audit, calendar_store, jobs
from zhengshu.kernel.db import Base
from zhengshu.org import models as org_models

MODEL_MODULES = (audit, calendar_store, jobs, org_models)


def metadata() -> MetaData:
    return Base.metadata
