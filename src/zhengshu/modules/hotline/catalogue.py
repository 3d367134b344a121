"""The category list of 12345 orders (packaged YAML; a city may replace it)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    unit_code: str | None
    aliases: tuple[str, ...] = ()


@cache
def categories() -> dict[str, Category]:
    raw = yaml.safe_load(
        resources.files("zhengshu.modules.hotline").joinpath("categories.yaml").read_text("utf-8")
    )
    return {
        str(item["code"]): Category(
            str(item["code"]),
            str(item["name"]),
            item.get("unit"),
            tuple(str(a) for a in item.get("aliases", ())),
        )
        for item in raw
    }


def code_for(label: str) -> str | None:
    """The category code a label stands for: the code itself, the name or an alias."""
    for category in categories().values():
        if label in (category.code, category.name, *category.aliases):
            return category.code
    return None
