"""FastAPI dependencies shared by the hotline's routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from zhengshu.modules.hotline.service import HotlineConfig
from zhengshu.org.deps import AppSettings


async def hotline_config(settings: AppSettings) -> HotlineConfig:
    """The hotline's settings (number prefix, working hours, dispatch policy). A coroutine
    on purpose: plain computation, so no thread-pool hop on every request."""
    return HotlineConfig.from_settings(settings)


Config = Annotated[HotlineConfig, Depends(hotline_config)]
