"""Extreme events (极端事件): texts that signal danger to life or public safety, or a group
incident, for an immediate warning.

The words and the context rules are data: ``extreme_words.yaml`` beside this module (a city
passes the path of its own copy). A term counts in a sentence unless

* a negation stands just before it ("不会自杀", "没有人跳楼", "防溺水");
* the sentence is hypothetical, a figure of speech, about the past or the news, or a
  question ("如果发生火灾", "容易起火", "就像爆炸", "去年有人跳楼", "跳楼能解决问题吗"),
  or a hazard word follows the term ("起火隐患", "有倒塌危险"); for life and group terms
  a threat between the marker and the term still counts ("如果再不解决，我就去跳楼");
* it is part of a longer word that means something else ("信息爆炸", "火灾隐患");
* it is a group term ("聚集", "讨薪", "堵路") and the sentence gives no number of people
  ("三十多名工人", "上百业主"), unless the term implies a group ("集体上访").

``scan`` returns one hit per (kind, term), the most severe first; each with the sentence
around the term as the snippet an operator reads before acting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from zhengshu.modules.hotline.dispatch.text import normalize

_SENTENCE = re.compile(r"[。！？；!?;\n]+")
_SNIPPET = 24


@dataclass(frozen=True)
class ExtremeHit:
    """A term found in context: ``kind`` (life, public_safety, group), the ``term``,
    ``level`` (3 = danger to life or public safety, 2 = group incident) and ``snippet``."""

    kind: str
    term: str
    level: int
    snippet: str


@dataclass(frozen=True)
class _Category:
    kind: str
    label: str
    level: int
    terms: tuple[str, ...]
    exclude: tuple[str, ...]
    threat_overrides: bool
    require_quantity: bool
    implies_group: frozenset[str]


@dataclass(frozen=True)
class Rules:
    """The word list and context rules, as loaded from YAML."""

    categories: tuple[_Category, ...]
    negations: tuple[str, ...]
    negation_window: int
    hypothetical: tuple[str, ...]
    historical: tuple[str, ...]
    questions: tuple[str, ...]
    after: tuple[str, ...]
    after_window: int
    threats: tuple[str, ...]
    quantity: re.Pattern[str]
    pattern: re.Pattern[str]

    @property
    def labels(self) -> dict[str, str]:
        """kind -> Chinese label (危及生命, 公共安全, 群体事件)."""
        return {c.kind: c.label for c in self.categories}


def _words(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"词表格式错误：{where} 应为词语列表 / {where} must be a list of words")
    return tuple(normalize(v) for v in value)


def parse_rules(data: Any) -> Rules:
    """Rules from the parsed YAML document; ValueError (zh / en) when malformed."""
    if not isinstance(data, dict) or not isinstance(data.get("categories"), list):
        raise ValueError("词表格式错误：缺少 categories / word list needs 'categories'")
    categories = []
    for i, raw in enumerate(data["categories"]):
        if not isinstance(raw, dict) or not raw.get("kind") or not raw.get("terms"):
            raise ValueError(
                f"词表格式错误：第 {i + 1} 类缺少 kind 或 terms / "
                f"category {i + 1} needs 'kind' and 'terms'"
            )
        try:
            level = int(raw.get("level", 2))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"词表格式错误：level 应为整数 / level must be an integer ({exc})"
            ) from exc
        categories.append(
            _Category(
                kind=str(raw["kind"]),
                label=str(raw.get("label", raw["kind"])),
                level=level,
                terms=_words(raw["terms"], f"{raw['kind']}.terms"),
                exclude=_words(raw.get("exclude"), f"{raw['kind']}.exclude"),
                threat_overrides=bool(raw.get("threat_overrides", False)),
                require_quantity=raw.get("require") == "quantity",
                implies_group=frozenset(
                    _words(raw.get("implies_group"), f"{raw['kind']}.implies_group")
                ),
            )
        )
    negation = data.get("negation") or {}
    after = data.get("after") or {}
    if not isinstance(negation, dict) or not isinstance(after, dict):
        raise ValueError(
            "词表格式错误：negation 与 after 应含 window 与 words / "
            "negation and after need 'window' and 'words'"
        )
    try:
        quantity = re.compile(str(data.get("quantity") or r"(?!)"))
    except re.error as exc:
        raise ValueError(
            f"词表格式错误：quantity 不是正则表达式 / bad quantity regex: {exc}"
        ) from exc
    terms = sorted({t for c in categories for t in c.terms}, key=len, reverse=True)
    return Rules(
        categories=tuple(categories),
        negations=_words(negation.get("words"), "negation.words"),
        negation_window=int(negation.get("window", 4)),
        hypothetical=_words(data.get("hypothetical"), "hypothetical"),
        historical=_words(data.get("historical"), "historical"),
        questions=_words(data.get("question"), "question"),
        after=_words(after.get("words"), "after.words"),
        after_window=int(after.get("window", 8)),
        threats=_words(data.get("threat"), "threat"),
        quantity=quantity,
        pattern=re.compile("|".join(re.escape(t) for t in terms)),
    )


def _default_text() -> str:
    return (
        resources.files("zhengshu.modules.hotline.insight")
        .joinpath("extreme_words.yaml")
        .read_text(encoding="utf-8")
    )


@lru_cache(maxsize=16)
def _load(path: str | None, mtime: float) -> Rules:
    text = _default_text() if path is None else Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"词表不是有效的 YAML / not valid YAML: {exc}") from exc
    return parse_rules(data)


def load_rules(path: str | Path | None = None) -> Rules:
    """The rules in ``path`` (a city's copy) or the built-in list; reloaded when the file
    changes."""
    if path is None:
        return _load(None, 0.0)
    p = Path(path)
    return _load(str(p.resolve()), p.stat().st_mtime)


def _category_of(rules: Rules) -> dict[str, list[_Category]]:
    out: dict[str, list[_Category]] = {}
    for category in rules.categories:
        for term in category.terms:
            out.setdefault(term, []).append(category)
    return out


def _excluded(sentence: str, start: int, end: int, exclude: tuple[str, ...]) -> bool:
    for word in exclude:
        for m in re.finditer(re.escape(word), sentence):
            if m.start() <= start and end <= m.end():
                return True
            # a word right after the term that changes its meaning ("火灾" + "隐患")
            if m.start() < end <= m.end() or start < m.end() <= end:
                return True
    return False


def _last(text: str, words: tuple[str, ...]) -> int:
    """Where the last of ``words`` starts in ``text`` (-1 when none does)."""
    return max((text.rfind(w) for w in words), default=-1)


def _counts(rules: Rules, category: _Category, sentence: str, start: int, end: int) -> bool:
    term = sentence[start:end]
    if _excluded(sentence, start, end, category.exclude):
        return False
    head = sentence[:start]
    threat = _last(head, rules.threats) if category.threat_overrides else -1
    window_start = max(0, start - rules.negation_window)
    negation = _last(head[window_start:], rules.negations)
    if negation >= 0 and threat < window_start + negation:
        return False
    if any(w in sentence[end : end + rules.after_window] for w in rules.after):
        return False
    marker = _last(head, (*rules.hypothetical, *rules.historical))
    if marker >= 0 and threat <= marker:
        return False
    if threat < 0 and any(w in sentence for w in rules.questions):
        return False
    if category.require_quantity and term not in category.implies_group:
        return bool(rules.quantity.search(sentence))
    return True


def _snippet(sentence: str, start: int, end: int) -> str:
    left = max(0, start - _SNIPPET)
    right = min(len(sentence), end + _SNIPPET)
    text = sentence[left:right].strip()
    return ("…" if left > 0 else "") + text + ("…" if right < len(sentence) else "")


def scan(text: str, path: str | Path | None = None) -> list[ExtremeHit]:
    """Extreme-event hits in ``text``: one per (kind, term), highest level first.

    ``path`` names a city's own word list (YAML, same format as ``extreme_words.yaml``).
    """
    rules = load_rules(path)
    by_term = _category_of(rules)
    hits: dict[tuple[str, str], ExtremeHit] = {}
    for sentence in _SENTENCE.split(normalize(text)):
        if not sentence:
            continue
        for match in rules.pattern.finditer(sentence):
            term = match.group()
            for category in by_term.get(term, []):
                key = (category.kind, term)
                if key in hits:
                    continue
                if _counts(rules, category, sentence, match.start(), match.end()):
                    hits[key] = ExtremeHit(
                        kind=category.kind,
                        term=term,
                        level=category.level,
                        snippet=_snippet(sentence, match.start(), match.end()),
                    )
    return sorted(hits.values(), key=lambda h: (-h.level, h.kind, h.term))
