"""Where an address lies: free text (or a point) to a town/street and a village/community.

The gazetteer is built from the org tree (every town-level and village-level unit) plus the
hand-written ``places.yaml`` (old names, landmarks, slips of the pen, names that must not be
guessed from, words that place an address outside the city). Resolution, in order:

1. normalize: NFKC (full-width digits and letters), Traditional to Simplified (OpenCC t2s),
   lower case, everything but letters, digits and Chinese characters dropped;
2. scan leftmost-longest for known names: full names, short names, names without their
   suffix, aliases, landmarks; "东莞市" / "广东省" are consumed as context, so that
   "东莞城市管理局" does not read as 莞城;
3. weigh the levels against each other: a village must lie in the town named, a village
   alone implies its town only when its name is unique and not a common word, two towns
   named, or a place outside the city, send the address to a human;
4. only where no town (or no village) was found, try near misses, one slip away (a
   one-edit index for towns, rapidfuzz's Levenshtein for villages), under strict rules: a
   confusable character (places.yaml) and/or an explicit 镇/街道/村/社区 after it.

Wrong answers cost more than a human look: anything doubtful comes back with ``town=None``.
"""

from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml
from rapidfuzz.distance import Levenshtein

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

TOWN_KINDS = frozenset({"street", "town", "park"})
VILLAGE_KINDS = frozenset({"village", "community"})
CITY_KIND = "city"

# Suffixes taken off a name to get its stem, longest first.
_TOWN_SUFFIXES = ("街道办事处", "街道", "镇")
_VILLAGE_SUFFIXES = ("村民委员会", "居民委员会", "社区居委会", "村委会", "居委会", "社区", "村")
# Other ways of writing a village-level unit: a community that used to be a village is still
# called "X村" by many callers, and the other way round.
_VILLAGE_FORMS = ("村", "社区", "村委会", "居委会", "村民委员会", "居民委员会")
# What may follow a town-level stem written with a slip of the pen, for it to count.
_TOWN_MARKERS = ("镇", "街道", "区", "办事处", "园区")
_VILLAGE_MARKERS = ("村", "社区", "居委", "村委")
# A name followed by one of these is a road or a bridge named after the place, which may lie
# anywhere: it is weak evidence only.
_ROAD = re.compile(r"大道|大街|大桥|路|街(?!道)|巷|桥|高速|公路|立交|隧道|道(?![滘窖])")

_KEEP = re.compile(r"[^0-9a-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")

# Confidence of each kind of evidence for the town.
_TOWN_WEIGHT = {
    "name": 0.97,
    "alias": 0.95,
    "short": 0.93,
    "landmark": 0.9,
    "misspelling": 0.85,
}
_IMPLIED_WEIGHT = {"name": 0.85, "alias": 0.8, "variant": 0.8, "stem": 0.75, "landmark": 0.85}
_FUZZY_TOWN = 0.7
_MIN_CONFIDENCE = 0.5

PLACES_PACKAGE = "zhengshu.modules.hotline.dispatch"
PLACES_FILE = "places.yaml"


@dataclass(frozen=True)
class PlaceRow:
    """A unit of the org tree, as the gazetteer needs it."""

    code: str
    parent_code: str | None
    kind: str
    name: str
    short_name: str | None


@dataclass(frozen=True)
class Resolution:
    """Where an address lies; ``town=None`` means a human has to decide."""

    town: str | None
    village: str | None
    town_code: str | None
    village_code: str | None
    confidence: float
    matched: list[str] = field(default_factory=list)
    reason: str | None = None  # why it goes to a human (Chinese, shown to the dispatcher)

    def as_dict(self) -> dict[str, Any]:
        return {
            "town": self.town,
            "village": self.village,
            "confidence": self.confidence,
            "town_code": self.town_code,
            "village_code": self.village_code,
            "matched": list(self.matched),
            "reason": self.reason,
        }

    @property
    def needs_human(self) -> bool:
        return self.town is None


def _human(reason: str, matched: Iterable[str] = ()) -> Resolution:
    return Resolution(None, None, None, None, 0.0, list(dict.fromkeys(matched)), reason)


@cache
def _t2s() -> Any:
    import opencc

    return opencc.OpenCC("t2s.json")


def normalize(text: str) -> str:
    """The form names are compared in: Simplified, half-width, lower case, no punctuation."""
    text = unicodedata.normalize("NFKC", text)
    text = _t2s().convert(text)
    return _KEEP.sub("", text.lower())


def _stem(name: str, suffixes: tuple[str, ...]) -> str:
    for suffix in suffixes:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


@dataclass(frozen=True)
class _Place:
    code: str
    name: str
    kind: str
    town_code: str | None  # villages: the town-level unit they lie in
    stem: str


@dataclass(frozen=True)
class _Entry:
    role: str  # town | village | landmark | city | province | outside | ambiguous
    code: str | None = None  # town code (town, landmark) or village code (village)
    how: str = "name"  # name | short | alias | misspelling | variant | stem | landmark
    village: str | None = None  # landmark: the village it lies in, when known


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    key: str
    entries: tuple[_Entry, ...]
    road: bool  # followed by 路/街/大道...: a road named after the place


class Gazetteer:
    """Names of the city's towns and villages, and the rules to read an address with them."""

    def __init__(
        self,
        towns: dict[str, _Place],
        villages: dict[str, _Place],
        index: dict[str, list[_Entry]],
        *,
        weak_short: frozenset[str],
        common_stems: frozenset[str],
        confusables: dict[str, frozenset[str]],
        centres: list[tuple[float, float, str]],
        centre_radius_km: float,
    ) -> None:
        self._towns = towns
        self._villages = villages
        self._index = {k: tuple(v) for k, v in index.items()}
        lengths: dict[str, set[int]] = {}
        for key in self._index:
            lengths.setdefault(key[0], set()).add(len(key))
        self._lengths = {c: sorted(ls, reverse=True) for c, ls in lengths.items()}
        self._weak_short = weak_short
        self._common = common_stems
        self._confusables = confusables
        self._centres = centres
        self._radius_km = centre_radius_km
        self._town_stems = [(p.stem, p.code) for p in towns.values() if len(p.stem) >= 2]
        # Near misses of town stems (see _near_misses): one character replaced (masked with
        # NUL), one left out of a stem of three or more.
        self._stems = dict(self._town_stems)
        self._masked: dict[str, list[tuple[str, str]]] = {}
        self._dropped: dict[str, list[tuple[str, str]]] = {}
        for stem, code in self._town_stems:
            for p in range(len(stem)):
                self._masked.setdefault(stem[:p] + "\0" + stem[p + 1 :], []).append((stem, code))
                if len(stem) >= 3:
                    self._dropped.setdefault(stem[:p] + stem[p + 1 :], []).append((stem, code))
        self._near_lengths = sorted(
            {len(s) + d for s, _ in self._town_stems for d in (-1, 0, 1) if len(s) + d >= 2},
            reverse=True,
        )
        self._town_keys = frozenset(
            k for k, es in self._index.items() if any(e.role == "town" for e in es)
        )
        self._villages_by_town: dict[str, list[_Place]] = {}
        for place in villages.values():
            if place.town_code:
                self._villages_by_town.setdefault(place.town_code, []).append(place)

    # -- building -------------------------------------------------------------------------

    @classmethod
    def from_rows(
        cls, rows: Iterable[PlaceRow], aliases: Mapping[str, Any] | None = None
    ) -> Gazetteer:
        """Build from units of the tree; ``aliases`` is a document shaped like places.yaml."""
        config: Mapping[str, Any] = aliases or {}
        rows = list(rows)
        towns: dict[str, _Place] = {}
        for row in rows:
            if row.kind in TOWN_KINDS:
                stem = _stem(normalize(row.name), _TOWN_SUFFIXES)
                towns[row.code] = _Place(row.code, row.name, row.kind, None, stem)
        villages: dict[str, _Place] = {}
        for row in rows:
            if row.kind in VILLAGE_KINDS and row.parent_code in towns:
                stem = _stem(normalize(row.name), _VILLAGE_SUFFIXES)
                villages[row.code] = _Place(row.code, row.name, row.kind, row.parent_code, stem)
        town_by_name = {p.name: p for p in towns.values()}
        village_by_name = {
            f"{towns[p.town_code].name}/{p.name}": p for p in villages.values() if p.town_code
        }
        common = frozenset(normalize(s) for s in config.get("common_stems") or ())
        distinctive = frozenset(normalize(s) for s in config.get("distinctive_stems") or ())

        index: dict[str, list[_Entry]] = {}

        def add(key: str, entry: _Entry) -> None:
            key = normalize(key)
            if len(key) < 2:
                return
            entries = index.setdefault(key, [])
            if entry not in entries:
                entries.append(entry)

        for row in rows:
            if row.kind == CITY_KIND:
                for key in (row.name, row.short_name or ""):
                    add(key, _Entry("city"))
        for key in config.get("province") or ():
            add(key, _Entry("province"))

        for place in towns.values():
            add(place.name, _Entry("town", place.code, "name"))
            add(place.stem, _Entry("town", place.code, "short"))
        for row in rows:
            if row.code in towns and row.short_name:
                add(row.short_name, _Entry("town", row.code, "short"))
        for how, section in (("alias", "towns"), ("misspelling", "misspellings")):
            for name, keys in (config.get(section) or {}).items():
                town = town_by_name.get(name)
                if town is not None:
                    for key in keys or ():
                        add(key, _Entry("town", town.code, how))
        town_keys = set(index)

        # Village stems: how many villages share each, across the city.
        stem_count: dict[str, int] = {}
        for place in villages.values():
            stem_count[place.stem] = stem_count.get(place.stem, 0) + 1
        for place in villages.values():
            add(place.name, _Entry("village", place.code, "name"))
            if place.stem in common or len(place.stem) < 2:
                continue
            for form in _VILLAGE_FORMS:
                if place.stem + form != normalize(place.name):
                    add(place.stem + form, _Entry("village", place.code, "variant"))
            if place.stem not in town_keys:
                # A bare stem implies its town only where it is known to be distinctive.
                alone = place.stem in distinctive and stem_count[place.stem] == 1
                how = "stem" if alone else "tstem"  # tstem: only with its town named
                add(place.stem, _Entry("village", place.code, how))
        for name, keys in (config.get("villages") or {}).items():
            village = village_by_name.get(name)
            if village is not None:
                for key in keys or ():
                    add(key, _Entry("village", village.code, "alias"))

        for key, spec in (config.get("landmarks") or {}).items():
            town = town_by_name.get(str(spec.get("town", "")))
            if town is None:
                continue
            village = village_by_name.get(f"{town.name}/{spec.get('village')}")
            add(key, _Entry("landmark", town.code, "landmark", village.code if village else None))
        for key in config.get("ambiguous") or ():
            add(key, _Entry("ambiguous"))
        for key in config.get("outside") or ():
            add(key, _Entry("outside"))

        confusables: dict[str, set[str]] = {}
        for group in config.get("confusables") or ():
            chars = set(normalize(str(group)))
            for char in chars:
                confusables.setdefault(char, set()).update(chars - {char})
        centres = []
        for name, point in (config.get("centres") or {}).items():
            town = town_by_name.get(name)
            if town is not None and point:
                centres.append((float(point[0]), float(point[1]), town.code))
        return cls(
            towns,
            villages,
            index,
            weak_short=frozenset(normalize(s) for s in config.get("weak_short_names") or ()),
            common_stems=common,
            confusables={c: frozenset(s) for c, s in confusables.items()},
            centres=centres,
            centre_radius_km=float(config.get("centre_radius_km") or 4.0),
        )

    @classmethod
    def demo(cls) -> Gazetteer:
        """The demo city's tree (org/data/dongguan_units.csv) with the packaged places.yaml."""
        return _demo()

    @classmethod
    def from_session(cls, session: Session) -> Gazetteer:
        """The tree in the database (active units), with the packaged places.yaml."""
        from sqlalchemy import select

        from zhengshu.org.models import Unit

        kinds = sorted(TOWN_KINDS | VILLAGE_KINDS | {CITY_KIND})
        units = session.execute(
            select(Unit.id, Unit.parent_id, Unit.code, Unit.kind, Unit.name, Unit.short_name).where(
                Unit.kind.in_(kinds), Unit.active.is_(True)
            )
        ).all()
        code_of = {u.id: u.code for u in units}
        rows = [
            PlaceRow(u.code, code_of.get(u.parent_id), u.kind, u.name, u.short_name) for u in units
        ]
        return cls.from_rows(rows, packaged_places())

    # -- reading an address ---------------------------------------------------------------

    def _scan(self, text: str) -> list[_Mention]:
        mentions: list[_Mention] = []
        i, n = 0, len(text)
        while i < n:
            for length in self._lengths.get(text[i], ()):
                key = text[i : i + length]
                entries = self._index.get(key) if i + length <= n else None
                if entries:
                    mentions.append(_Mention(i, i + length, key, entries, False))
                    i += length
                    break
            else:
                i += 1
        starts = {m.start for m in mentions}
        return [
            _Mention(m.start, m.end, m.key, m.entries, _road_after(text, m.end, starts))
            for m in mentions
        ]

    def resolve(self, address: str) -> Resolution:
        """Town and village of a free-text address; ``town=None`` when a human must decide."""
        text = normalize(address or "")
        if not text:
            return _human("地址为空")
        mentions = self._scan(text)

        outside = [m for m in mentions if _has(m, "outside") and not m.road]
        # Outside the city unless something of the city came first ("长安镇，靠近深圳").
        local_at = next((m.start for m in mentions if _is_local(m)), None)
        if outside and (local_at is None or outside[0].start < local_at):
            return _human("地址不在本市", [m.key for m in outside])
        penalty = 0.8 if outside else 1.0

        # "东莞桥头": right after the city's name a common word is the town's name.
        city_ends = {m.end for m in mentions if _has(m, "city")}
        strong: dict[str, tuple[float, _Mention]] = {}
        weak: dict[str, _Mention] = {}
        evidence: list[tuple[_Mention, _Entry]] = []  # village-level
        ambiguous: list[str] = []
        for m in mentions:
            for entry in m.entries:
                if entry.role == "ambiguous":
                    ambiguous.append(m.key)
                elif entry.role == "town" and entry.code:
                    weak_word = m.key in self._weak_short and m.start not in city_ends
                    road = m.road and not m.key.endswith(_TOWN_SUFFIXES)
                    if entry.how in {"short", "name"} and (road or weak_word):
                        weak.setdefault(entry.code, m)
                        continue
                    weight = _TOWN_WEIGHT[entry.how]
                    if weight > strong.get(entry.code, (0.0, m))[0]:
                        strong[entry.code] = (weight, m)
                elif entry.role == "landmark" and entry.code:
                    if _TOWN_WEIGHT["landmark"] > strong.get(entry.code, (0.0, m))[0]:
                        strong[entry.code] = (_TOWN_WEIGHT["landmark"], m)
                    if entry.village:
                        evidence.append((m, _Entry("village", entry.village, "landmark")))
                elif entry.role == "village" and not (m.road and entry.how in {"stem", "tstem"}):
                    evidence.append((m, entry))

        if len(strong) > 1:
            names = [self._towns[c].name for c in strong]
            keys = [v[1].key for v in strong.values()]
            return _human("地址提到多个镇街：" + "、".join(names), keys)

        if strong:
            (town_code, (confidence, town_mention)) = next(iter(strong.items()))
            return self._with_town(
                town_code, confidence * penalty, [town_mention.key], evidence, text, mentions
            )

        # No town named: a village whose name is unique in the city implies its town.
        implied: dict[str, list[tuple[_Mention, _Entry]]] = {}
        for m, entry in evidence:
            if entry.how == "tstem" or len(self._entries_of(m, "village")) > 1:
                continue
            place = self._villages[entry.code or ""]
            if entry.how != "name" and place.stem in self._common:
                continue
            if entry.how == "name" and place.stem in self._common and place.town_code not in weak:
                continue  # "水口村" may be the end of "石水口村": needs its town named
            implied.setdefault(place.town_code or "", []).append((m, entry))
        if len(implied) > 1:
            names = [self._towns[c].name for c in implied]
            return _human("地址中的村（社区）分属不同镇街：" + "、".join(names))
        if implied:
            town_code, found = next(iter(implied.items()))
            best = max(_IMPLIED_WEIGHT.get(e.how, 0.7) for _, e in found)
            if weak and town_code not in weak:
                best *= 0.8
            return self._with_town(
                town_code, best * penalty, [m.key for m, _ in found], evidence, text, mentions
            )

        if len(weak) == 1 and not ambiguous:
            # A road named after a town, or a town name that is also a common word: only with
            # a village of that town written in full.
            town_code, m = next(iter(weak.items()))
            named = [
                (vm, e)
                for vm, e in evidence
                if e.how in {"name", "variant", "alias"}
                and self._villages[e.code or ""].town_code == town_code
            ]
            if named:
                return self._with_town(town_code, 0.75 * penalty, [m.key], evidence, text, mentions)

        if ambiguous:
            return _human("地名跨多个镇街，需人工判断：" + "、".join(ambiguous), ambiguous)
        fuzzy = self._fuzzy_town(text, mentions)
        if fuzzy is not None:
            town_code, at, key = fuzzy
            taken = sorted(
                [*mentions, _Mention(at, at + len(key), key, (), False)], key=lambda m: m.start
            )
            return self._with_town(town_code, _FUZZY_TOWN * penalty, [key], evidence, text, taken)
        if weak:
            return _human("只有道路名或常用词，无法确定镇街", [m.key for m in weak.values()])
        return _human("未识别出本市的镇街")

    def _entries_of(self, m: _Mention, role: str) -> list[_Entry]:
        return [e for e in m.entries if e.role == role]

    def _with_town(
        self,
        town_code: str,
        confidence: float,
        matched: list[str],
        evidence: list[tuple[_Mention, _Entry]],
        text: str,
        mentions: list[_Mention],
    ) -> Resolution:
        """Pick the village, now that the town is known, and check the two agree."""
        town = self._towns[town_code]
        inside: dict[str, tuple[_Mention, _Entry]] = {}
        groups: dict[int, tuple[_Mention, list[_Entry]]] = {}
        for m, entry in evidence:
            groups.setdefault(m.start, (m, []))[1].append(entry)
        for m, entries in groups.values():
            here = [e for e in entries if self._villages[e.code or ""].town_code == town_code]
            for entry in here:
                inside.setdefault(entry.code or "", (m, entry))
            if here:
                continue
            written_out = [
                self._villages[e.code or ""]
                for e in entries
                if e.how in {"name", "variant", "alias", "landmark", "stem"}
                and self._villages[e.code or ""].stem not in self._common
            ]
            if written_out:
                # A village of another town, written out in full: the address contradicts
                # itself (or names a namesake the tree lacks). A human decides.
                place = written_out[0]
                other = self._towns[place.town_code or ""].name
                return _human(f"{place.name}属于{other}，与{town.name}不符", [*matched, m.key])
            confidence *= 0.9  # a short name shared with a place elsewhere: ignored
        full = {c: v for c, v in inside.items() if v[1].how not in {"stem", "tstem"}}
        chosen = full or inside
        if len(chosen) == 1:
            code, (m, entry) = next(iter(chosen.items()))
            if entry.how in {"stem", "tstem"}:
                confidence *= 0.97
            else:
                confidence = min(0.99, confidence + 0.02)
            village = self._villages[code]
            return Resolution(
                town.name,
                village.name,
                town.code,
                village.code,
                round(confidence, 2),
                list(dict.fromkeys([*matched, m.key])),
            )
        if len(chosen) > 1:
            confidence *= 0.9
        else:
            fuzzy = self._fuzzy_village(town_code, text, mentions)
            if fuzzy is not None:
                village, key = fuzzy
                return Resolution(
                    town.name,
                    village.name,
                    town.code,
                    village.code,
                    round(confidence * 0.9, 2),
                    list(dict.fromkeys([*matched, key])),
                )
        if confidence < _MIN_CONFIDENCE:
            return _human("证据不足", matched)
        return Resolution(
            town.name, None, town.code, None, round(confidence, 2), list(dict.fromkeys(matched))
        )

    # -- near misses ----------------------------------------------------------------------

    def _free_runs(self, text: str, mentions: list[_Mention]) -> list[tuple[int, int]]:
        runs, at = [], 0
        for m in mentions:
            if m.start > at:
                runs.append((at, m.start))
            at = m.end
        if at < len(text):
            runs.append((at, len(text)))
        return runs

    def _near_misses(self, window: str) -> Iterable[tuple[str, str]]:
        """Town stems one edit away from ``window``: (stem, code)."""
        for p in range(len(window)):
            masked = window[:p] + "\0" + window[p + 1 :]
            yield from self._masked.get(masked, ())
            dropped = window[:p] + window[p + 1 :]  # one character added to a long stem
            if len(dropped) >= 3 and dropped in self._stems:
                yield dropped, self._stems[dropped]
        yield from self._dropped.get(window, ())  # one character left out of a long stem

    def _fuzzy_town(self, text: str, mentions: list[_Mention]) -> tuple[str, int, str] | None:
        city_ends = {m.end for m in mentions if _has(m, "city") or _has(m, "province")}
        found: dict[str, tuple[int, str]] = {}
        for start, end in self._free_runs(text, mentions):
            for i in range(start, end):
                for length in self._near_lengths:  # longest first: the fullest match
                    if i + length > end:
                        continue
                    window = text[i : i + length]
                    for stem, code in self._near_misses(window):
                        if window == stem:
                            continue
                        after = text[i + length :]
                        if _ROAD.match(after):
                            continue
                        # Two characters: a confusable one, and 镇/街道 after or 东莞 before.
                        # Longer: a confusable one, or any one slip with 镇/街道 after
                        # ("东莞市松山路" is not 松山湖).
                        suffixed = after.startswith(_TOWN_MARKERS)
                        diff_ok = len(window) == len(stem) and self._confusable_diff(window, stem)
                        if len(stem) == 2 and not (diff_ok and (suffixed or i in city_ends)):
                            continue
                        if len(stem) >= 3 and not (diff_ok or suffixed):
                            continue
                        found.setdefault(code, (i, window))
        if len(found) == 1:
            code, (at, window) = next(iter(found.items()))
            return code, at, window
        return None

    def _confusable_diff(self, window: str, stem: str) -> bool:
        diffs = [(a, b) for a, b in zip(window, stem, strict=True) if a != b]
        return len(diffs) == 1 and diffs[0][1] in self._confusables.get(diffs[0][0], ())

    def _fuzzy_village(
        self, town_code: str, text: str, mentions: list[_Mention]
    ) -> tuple[_Place, str] | None:
        """A village of the town one slip away (rapidfuzz Levenshtein distance 1).

        Two characters (or a common word): a confusable character and 村/社区 after it.
        Longer: a confusable character, or any one slip with 村/社区 after it
        ("百果园" is a shop chain, not 百果洞).
        """
        found: dict[str, tuple[_Place, str]] = {}
        for start, end in self._free_runs(text, mentions):
            for place in self._villages_by_town.get(town_code, ()):
                stem = place.stem
                if len(stem) < 2 or stem in self._town_keys:  # 大岭山社区: the town's name
                    continue
                lengths = (
                    (len(stem),) if len(stem) == 2 else (len(stem) + 1, len(stem), len(stem) - 1)
                )
                for length in lengths:
                    for i in range(start, end - length + 1):
                        window = text[i : i + length]
                        if window == stem or Levenshtein.distance(window, stem, score_cutoff=1) > 1:
                            continue
                        marked = text[i + length :].startswith(_VILLAGE_MARKERS)
                        confusable = length == len(stem) and self._confusable_diff(window, stem)
                        if len(stem) == 2 or stem in self._common:
                            if not (marked and confusable):
                                continue
                        elif not (marked or confusable):
                            continue
                        found.setdefault(place.code, (place, window))
        if len(found) == 1:
            return next(iter(found.values()))
        return None

    # -- points -----------------------------------------------------------------------------

    def resolve_point(self, lat: float, lon: float) -> Resolution:
        """The town whose centre is nearest, within the radius; never a village.

        Only towns with a centre in places.yaml take part; with none, a human decides.
        """
        if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
            return _human("坐标无效")
        if not self._centres:
            return _human("未配置镇街中心坐标，需人工判断")
        ranked = sorted(
            (_distance_km(lat, lon, c_lat, c_lon), code) for c_lat, c_lon, code in self._centres
        )
        distance, code = ranked[0]
        if distance > self._radius_km:
            return _human(f"距最近的镇街中心 {distance:.1f} 公里，超出范围")
        confidence = 0.6
        if len(ranked) > 1 and ranked[1][0] - distance < 1.0:
            confidence = 0.5  # two centres about as near: the boundary may lie between
        town = self._towns[code]
        return Resolution(town.name, None, town.code, None, confidence, [f"{lat:.5f},{lon:.5f}"])


def _has(m: _Mention, role: str) -> bool:
    return any(e.role == role for e in m.entries)


def _is_local(m: _Mention) -> bool:
    return any(e.role in {"city", "town", "village", "landmark"} for e in m.entries)


def _road_after(text: str, end: int, starts: set[int]) -> bool:
    if end in starts:
        return False
    after = text[end:]
    return _ROAD.match(after) is not None


def _distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))


@cache
def packaged_places() -> dict[str, Any]:
    """The packaged places.yaml (aliases, landmarks, outside-city words...)."""
    text = resources.files(PLACES_PACKAGE).joinpath(PLACES_FILE).read_text("utf-8")
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{PLACES_FILE}: expected a mapping at the top level")
    return data


def demo_rows() -> list[PlaceRow]:
    """The demo city's units (the packaged Dongguan tree)."""
    text = resources.files("zhengshu.org").joinpath("data/dongguan_units.csv").read_text("utf-8")
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    return [
        PlaceRow(
            row["code"].strip(),
            (row.get("parent_code") or "").strip() or None,
            row["kind"].strip(),
            row["name"].strip(),
            (row.get("short_name") or "").strip() or None,
        )
        for row in reader
    ]


@cache
def _demo() -> Gazetteer:
    return Gazetteer.from_rows(demo_rows(), packaged_places())
