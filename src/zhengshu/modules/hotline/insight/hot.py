"""Hot issues (热点问题): many orders about the same problem at the same place, or for the
same group of people, within a time window.

The pipeline, each step explainable to the person who reads the list:

1. **Places** (``extract_places``). Each title and the first 100 characters of each text
   are cut into clauses; a clause holding a place suffix (小区, 花园, 苑, 城, 村, 路, 大道,
   学校, 学院, 医院, 公司, 厂, 市场, 工地, 站 ..., or 案 for a named case) is segmented with
   jieba and the name is read backwards from the suffix over name-like tokens, stopping
   at verbs, pronouns, particles, position words (附近, 旁边), an administrative prefix
   (``A市``, ``A2区``: kept for display, dropped from the key) or the previous place. A
   name counts when it is specific: an administrative prefix; a token jieba does not know
   or tags as a place / organisation / proper name (ns, nt, nz, nr, j); a compound name
   ("魅力之城", "金色家园小区"). Generic words ("搅拌站", "小区", "幼儿园") never count.
   Groups of people (业主, 教师, 外卖骑手 ...) are mentions too, specific with a
   qualifier ("广铁职工"). The key of a place drops trailing 小区 / 社区, so
   "丽发新城小区", "A2区丽发新城" and "丽发新城社区" are one place; "万科魅力之城" also
   counts as "魅力之城" when others write that.
2. **Similarity.** Character 2-3-grams of the title (weight 0.45), character bigrams of
   the first 200 characters of the text (0.35), the title's jieba words (0.2): TF-IDF
   (plain term frequencies under 200 messages, where document frequencies say little),
   cosine of the weighted, concatenated vectors. Two messages that name the same specific
   place (one named by at most 2% of all messages) get ``place_bonus`` (0.25) on top.
   Time: full weight when the two are at most ``window_days`` (30) apart, halved for
   every further ``window_days``; a message without a time is near every other one.
3. **Clusters.** The similarity is computed in row blocks (memory grows with n, not n²)
   and only pairs above ``link`` (0.3) are kept: a sparse graph. Each connected component
   is then split by average-linkage agglomerative clustering (no chaining) cut at
   ``merge`` (0.4) mean similarity; a component too big for that is cut again at a higher
   ``link`` first. Then clusters (and single messages) most of whose messages name
   the same specific place, lie within ``window_days`` of each other and have mean texts
   at least ``related`` (0.3) similar are joined: one problem at one place in different
   words. Clusters with fewer than ``min_messages`` (2) messages or ``min_users`` (2)
   distinct callers are noise (one caller writing ten times is not a hot issue).
4. **Score** (higher is hotter)::

       base  = ln(1 + users) + 0.5 ln(1 + messages) + 0.3 ln(1 + likes + dislikes / 2)
       score = 10 x base x (1 + 0.25 tanh(max(growth, 0)))
                         x (0.8 + 0.4 unresolved_share, 1 where unknown)
                         x (1 if a place or group was found, else 0.85)

   ``growth`` compares the cluster's messages in the last half window before ``as_of``
   (by default the latest message) with the half window before that:
   ``(recent - earlier) / max(earlier, 1)``.
5. **Description.** The title of the cluster's most central message (highest mean
   similarity to the others), prefixed with the place when the title does not name it,
   cut to 48 characters; plus the cluster's top title words as keywords.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import squareform

from zhengshu.modules.hotline.dispatch.text import normalize, words

# ---------------------------------------------------------------------------------------
# Messages and hot issues


@dataclass
class Message:
    """One message (留言) or order: what the caller wrote, when, and the votes it got.

    ``at`` may be ``None``: some exports leave the time empty; such a message is treated
    as near in time to every other one and is left out of time ranges and growth.
    ``resolved`` is ``None`` where the channel does not say.
    """

    id: str
    user: str
    title: str
    text: str
    at: datetime | None
    likes: int = 0
    dislikes: int = 0
    resolved: bool | None = None
    place_hint: str | None = None


@dataclass
class HotIssue:
    """A cluster of messages about one problem, with its hotness score."""

    rank: int
    score: float
    start: datetime | None
    end: datetime | None
    place: str | None
    description: str
    message_ids: list[str]
    n_messages: int
    n_users: int
    growth: float
    likes: int
    dislikes: int
    unresolved_share: float | None
    keywords: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The contract keys first (rank, score, start, end, place, description,
        message_ids), then the figures behind the score."""
        return {
            "rank": self.rank,
            "score": self.score,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "place": self.place,
            "description": self.description,
            "message_ids": list(self.message_ids),
            "n_messages": self.n_messages,
            "n_users": self.n_users,
            "growth": self.growth,
            "likes": self.likes,
            "dislikes": self.dislikes,
            "unresolved_share": self.unresolved_share,
            "keywords": list(self.keywords),
        }


# ---------------------------------------------------------------------------------------
# Places, organisations and groups

# Masked administrative names of the open data set ("A市", "A2区", "K9县") and the masked
# province; real ones ("东莞市") are caught as single jieba tokens below.
_ADMIN = re.compile(r"[A-Z][0-9]{0,2}(?:省|市|区|县)|西地省")
_CLAUSE = re.compile(r"[，。！？；、,!?;:：（）()\[\]【】《》<>“”\"'‘’\s…—~·]+")

_AREA_SUFFIXES = ("街道", "镇", "乡", "片区", "新区", "园区", "开发区", "经开区", "高新区")
_PLACE_SUFFIXES = (
    # homes
    "小区", "花园", "家园", "新村", "社区", "公寓", "大厦", "广场", "山庄", "公馆", "华府",
    "苑", "园", "城", "村", "湾", "庄",
    # roads
    "大道", "路", "街", "巷", "桥", "隧道", "高速", "立交", "线",
    # institutions and sites
    "学校", "小学", "中学", "大学", "学院", "幼儿园", "医院", "卫生院", "诊所", "公司",
    "集团", "工厂", "厂", "市场", "工地", "车站", "站", "机场", "码头", "银行", "酒店",
    "宾馆", "超市", "商场", "中心", "馆", "店", "楼盘", "景区", "公园", "水库", "湖", "河",
    "江", "山",
)  # fmt: skip
_EVENT_SUFFIXES = ("案", "案件")
# Words that only extend the place right before them ("丽发新城" + "小区").
_TAILS = frozenset({"小区", "社区", "项目", "片区", "一期", "二期", "三期", "楼盘"})
_KEY_TAILS = ("小区", "社区", "项目", "楼盘")
_GROUPS = (
    "外卖骑手", "骑手", "快递员", "网约车司机", "出租车司机", "货车司机", "司机", "业主",
    "退休教师", "代课教师", "民办教师", "教师", "老师", "职工", "员工", "工人", "农民工",
    "学生", "家长", "村民", "居民", "退役军人", "环卫工", "商户", "摊贩", "租户", "购房者",
    "购房户", "投资人", "受害人", "受害者", "出借人", "拆迁户", "失地农民", "残疾人",
    "乡村医生", "医生", "护士",
)  # fmt: skip
_GROUP_SET = frozenset(_GROUPS)
_HOME_WORDS = frozenset({"小区", "花园", "家园", "新村", "公寓", "山庄", "公馆", "华府"})
# jieba tags that end a name when reading backwards: verbs, prepositions, conjunctions,
# particles, pronouns, adverbs, position words, interjections, punctuation (hard stops);
# also verbal nouns, adjectives, time words, idioms (soft stops, passed right before a
# one-character suffix: "特立" + "路", "橄榄" + "城").
_HARD_STOP_TAGS = frozenset(
    {"v", "vd", "p", "c", "u", "uj", "ul", "uz", "ug", "uv", "ud", "r", "rr", "rz", "d",
     "f", "y", "e", "o", "x", "s"}
)  # fmt: skip
_STOP_TAGS = _HARD_STOP_TAGS | {"vn", "a", "ad", "an", "t", "tg", "b", "q", "l", "i"}
# Characters that cut a word jieba made up (HMM) in two: "到泉塘" -> "泉塘".
_FUNCTION_CHARS = "的了在是有和与对把被让给为到要将从向往及或于也都就而并但无没不未"
_ROAD_SUFFIXES = frozenset({"大道", "路", "街", "巷", "桥", "隧道", "高速", "立交", "线"})
# Units that an administrative prefix alone does not make a name ("A市分公司").
_GENERIC_UNITS = frozenset(
    {"分公司", "子公司", "总公司", "办事处", "派出所", "居委会", "村委会", "管委会", "幼儿园",
     "卫生院", "人民医院", "中医院", "高铁站", "火车站", "汽车站", "地铁站", "公交站"}
)  # fmt: skip
_NAME_TAGS = frozenset({"ns", "nt", "nz", "nr", "nrt", "nrfg", "j", "eng"})
_STOP_WORDS = frozenset(
    {"咨询", "投诉", "反映", "举报", "建议", "请求", "要求", "希望", "关于", "请问", "强烈",
     "严重", "问题", "情况", "目前", "现在", "市民", "领导", "政府", "部门", "相关", "有关",
     "位于", "座落", "坐落", "地处", "所在", "附近", "周边", "旁边", "对面", "门口", "整个",
     "距离", "靠近", "紧邻", "房子", "一个", "这个", "那个", "两个", "几个", "每个", "各个",
     "一所", "一家", "一些", "某个", "一座", "一条", "一处", "我们", "我家", "本人"}
)  # fmt: skip
_BLOCKED = frozenset(
    {"政府", "市政府", "区政府", "县政府", "镇政府", "人民政府", "热线", "12345", "本小区",
     "该小区", "小区", "社区", "城市", "农村", "城区", "乡村", "全市", "本市", "县城"}
)  # fmt: skip
_MAX_NAME = 12
_MAX_TOKENS = 5


@dataclass(frozen=True)
class Mention:
    """A place, organisation, case or group named in a text.

    ``key`` is what two mentions must share to be the same place (no administrative
    prefix, no trailing 小区 / 社区); ``surface`` is how the text wrote it, with the
    administrative prefix and any place right before it ("A2区丽发新城小区").
    ``kind`` is place, area, event or group; ``specific`` is False for bare groups.
    """

    key: str
    surface: str
    kind: str
    specific: bool


@cache
def _tags() -> dict[str, str]:
    """jieba's word -> part-of-speech table (loaded once; unknown words are absent)."""
    _jieba()
    import jieba.posseg

    table: dict[str, str] = jieba.posseg.dt.word_tag_tab
    return table


@lru_cache(maxsize=65536)
def _suffix_of(token: str) -> tuple[str, str] | None:
    """(kind, suffix) when ``token`` ends a place, area, case or group name."""
    for suffix in _AREA_SUFFIXES:
        if token.endswith(suffix):
            return "area", suffix
    if token in _EVENT_SUFFIXES or (token.endswith("案") and len(token) <= 2):
        return "event", token
    for suffix in _PLACE_SUFFIXES:
        if token.endswith(suffix):
            return "place", suffix
    for group in _GROUPS:
        if token.endswith(group):
            return "group", group
    return None


@cache
def _jieba() -> Any:
    import jieba

    words("初始化")  # loads jieba's dictionary once, quietly, through the shared helper
    return jieba


@lru_cache(maxsize=65536)
def _segment(clause: str) -> tuple[tuple[str, bool], ...]:
    """jieba tokens of an already normalized ``clause``, masked administrative names split
    off first ("A市伊景园" would otherwise read "A / 市伊 / 景园"); True marks them."""
    jieba = _jieba()
    out: list[tuple[str, bool]] = []
    pos = 0
    for match in _ADMIN.finditer(clause):
        if match.start() > pos:
            out.extend((w, False) for w in jieba.lcut(clause[pos : match.start()]) if w.strip())
        out.append((match.group(), True))
        pos = match.end()
    if pos < len(clause):
        out.extend((w, False) for w in jieba.lcut(clause[pos:]) if w.strip())
    return tuple(out)


def _is_admin(token: str, tag: str | None) -> bool:
    return tag == "ns" and len(token) >= 3 and token[-1] in "省市县区"


def _ends_place(token: str) -> bool:
    """A token that is a place of its own when reading backwards ("东路" in
    "劳动东路魅力之城"): a road or an area, or any place word of three characters or more."""
    suffix = _suffix_of(token)
    if suffix is None or suffix[0] == "group":
        return False
    return suffix[0] == "area" or suffix[1] in _ROAD_SUFFIXES or len(token) >= 3


def _name_part(token: str, tag: str | None, first: bool) -> tuple[str, bool]:
    """How much of ``token`` belongs to a name read backwards, and whether to go on.

    ``first`` is the token right before a one-character suffix ("橄榄" + "城"), where
    only hard stops (verbs, particles, pronouns, position words) end the name.
    """
    if token in _STOP_WORDS or not token.strip() or not re.search(r"\w", token):
        return "", False
    if token in ("之", "·"):
        return token, True
    if tag is None:
        # A word jieba made up from characters (HMM): "丽发", but also "到泉塘", "要建".
        cut = max((token.rfind(ch) for ch in _FUNCTION_CHARS), default=-1)
        if cut >= 0:
            rest = token[cut + 1 :]
            return (rest, False) if len(rest) >= 2 else ("", False)
        return token, True
    stops = _HARD_STOP_TAGS if first else _STOP_TAGS
    if tag in stops:
        return "", False
    return token, True


@cache
def _freq() -> dict[str, int]:
    """jieba's word -> corpus frequency table."""
    table: dict[str, int] = _jieba().dt.FREQ
    return table


def _common(word: str, tags: dict[str, str]) -> bool:
    """A dictionary word that is no proper name ("麻将", "幼儿", "搅拌")."""
    tag = tags.get(word)
    return tag is not None and tag not in _NAME_TAGS and _freq().get(word, 0) >= 50


def _specific(tokens: list[str], suffix: str, admin: bool, tags: dict[str, str]) -> bool:
    """Whether a name read backwards from a suffix is a name and not a common word.

    One token: three characters or more, unknown to jieba or tagged as a name, and not a
    common word plus the suffix ("麻将馆", "幼儿园", "搅拌站" are not names; "海德公园",
    "广铁集团" are). Several
    tokens: one of those before the suffix must be unknown to jieba, tagged as a name, or
    rare; or three tokens or more end in a word for a compound ("金色家园小区"). An
    administrative prefix makes any longer name specific ("A市经济学院").
    """
    name = "".join(tokens)
    if name in _BLOCKED or any(b in name for b in ("政府", "热线", "12345")):
        return False
    if len(tokens) == 1:
        if len(name) < 3 or name in _GENERIC_UNITS:
            return False
        if admin:
            return True
        tag = tags.get(name)
        if tag is None:
            return True
        stem = name[: -len(suffix)] if name.endswith(suffix) else name
        return tag in _NAME_TAGS and not (_common(stem, tags) or len(stem) <= 1)
    if admin or (tokens[-1] in _HOME_WORDS and len(tokens) >= 3):
        return True  # "金色家园小区": a compound is named even by common words
    freq = _freq()
    return "之" in tokens or any(
        tags.get(t) is None or tags.get(t) in _NAME_TAGS or freq.get(t, 0) < 50 for t in tokens[:-1]
    )


def _clause_mentions(clause: str, tags: dict[str, str]) -> list[Mention]:
    tokens = _segment(clause)
    found: list[Mention] = []
    # index of the token that ended the previous mention, and that mention's surface
    last_end = -2
    last_surface = ""
    for k, (token, is_admin) in enumerate(tokens):
        if is_admin:
            continue
        suffix = _suffix_of(token)
        if suffix is None:
            continue
        kind, suffix_text = suffix
        if (
            last_end == k - 1
            and found
            and found[-1].kind != "group"
            and (token in _TAILS or (kind == "place" and token == suffix_text and len(token) >= 2))
        ):
            # "丽发新城" + "小区": the same place, written longer; "智慧桥" + "幼儿园": the
            # name of the kindergarten.
            prev = found[-1]
            last_surface = last_surface + token
            key = prev.key if token in _TAILS else prev.key + token
            found[-1] = Mention(key, last_surface, kind if kind == "event" else prev.kind, True)
            last_end = k
            continue
        span = [token]
        whole = True  # the name starts at a token boundary (not cut inside a word)
        j = k - 1
        while kind == "group" and j >= 0 and tokens[j][0] + "".join(span) in _GROUP_SET:
            span.insert(0, tokens[j][0])  # "外卖" + "骑手"
            j -= 1
        while j >= 0 and len(span) < _MAX_TOKENS and j != last_end:
            prev_token, prev_admin = tokens[j]
            tag = tags.get(prev_token)
            if prev_admin or _is_admin(prev_token, tag) or _ends_place(prev_token):
                break
            first = len(span) == 1 and len(token) == 1
            part, go_on = _name_part(prev_token, tag, first)
            if not part or len("".join(span)) + len(part) > _MAX_NAME:
                break
            span.insert(0, part)
            whole = part == prev_token
            j -= 1
            if not go_on:
                break
        admin_prefix = ""
        if whole:
            while j >= 0 and (tokens[j][1] or _is_admin(tokens[j][0], tags.get(tokens[j][0]))):
                admin_prefix = tokens[j][0] + admin_prefix
                j -= 1
        name = "".join(span)
        if kind == "group":
            qualified = "".join(span) not in _GROUP_SET
            key = name if qualified or not admin_prefix else admin_prefix + name
            surface = admin_prefix + name
            found.append(Mention(key, surface, "group", qualified or bool(admin_prefix)))
            last_end, last_surface = k, surface
            continue
        if len(name) <= len(suffix_text) and not admin_prefix:
            continue
        if not _specific(span, suffix_text, bool(admin_prefix), tags):
            continue
        key = name
        for tail in _KEY_TAILS:
            if key.endswith(tail) and len(key) - len(tail) >= 2:
                key = key[: -len(tail)]
        if kind == "event" and key.endswith("案件"):
            key = key[:-1]
        chained = found and last_end >= 0 and last_end == j
        surface = (last_surface if chained else admin_prefix) + name
        found.append(Mention(key, surface, kind, True))
        last_end, last_surface = k, surface
    return found


# A clause is segmented only when it holds one of these (jieba is the slow part).
_SUFFIX_HINT = re.compile(
    "|".join(
        sorted(
            {*_AREA_SUFFIXES, *_PLACE_SUFFIXES, *_EVENT_SUFFIXES, *_GROUPS},
            key=len,
            reverse=True,
        )
    )
)


def _clauses(text: str) -> list[str]:
    """Clauses of an already normalized text that may name a place."""
    return [c for c in _CLAUSE.split(text) if len(c) >= 2 and _SUFFIX_HINT.search(c)]


def mentions(text: str) -> list[Mention]:
    """Places, areas, named cases and groups in ``text``, in order, without repeats."""
    tags = _tags()
    seen: set[tuple[str, str]] = set()
    out: list[Mention] = []
    for clause in _clauses(normalize(text)):
        for m in _clause_mentions(clause, tags):
            if (m.key, m.kind) not in seen:
                seen.add((m.key, m.kind))
                out.append(m)
    return out


def extract_places(text: str) -> list[str]:
    """Places, organisations, named cases and groups of people that ``text`` names.

    Specific mentions first, in the order written (e.g. ``["A2区丽发新城小区"]``), then
    bare groups (``"业主"``). See the module docstring for the rules.
    """
    found = mentions(text)
    specific = [m.surface for m in found if m.specific]
    groups = [m.surface for m in found if not m.specific]
    return list(dict.fromkeys(specific + groups))


# ---------------------------------------------------------------------------------------
# Reading the open data sets

_TIME_FORMATS = (
    "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d",
    "%Y-%m-%d",
)
_REQUIRED = ("留言编号", "留言主题", "留言时间", "留言详情")


def parse_time(value: str) -> datetime | None:
    """A time as the message boards export it ("2019/2/28 11:25:05"); None when empty."""
    value = value.strip()
    if not value:
        return None
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(value, fmt)  # noqa: DTZ007 - local wall-clock times
        except ValueError:
            continue
    return None


def _int(value: str | None) -> int:
    try:
        return int(float(value or 0))
    except ValueError:
        return 0


def read_messages_csv(path: str | Path) -> list[Message]:
    """Messages from a message-board export (teddy2020c ``messages_votes.csv`` with
    反对数 / 点赞数, or ``messages_replies.csv`` with 答复意见: a reply means resolved).

    Raises ValueError (Chinese and English) when a required column is missing.
    """
    path = Path(path)
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            content = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ValueError(f"无法识别文件编码 / cannot decode {path.name} (utf-8 or gb18030)")
    reader = csv.DictReader(content.splitlines(keepends=True))
    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in _REQUIRED if c not in columns]
    if missing:
        raise ValueError(
            f"缺少列：{'、'.join(missing)} / missing columns: {', '.join(missing)} "
            f"(found: {', '.join(columns) or 'none'})"
        )
    has_reply = "答复意见" in columns
    out: list[Message] = []
    for raw_row in reader:
        row = {(k or "").strip(): v or "" for k, v in raw_row.items()}
        msg_id = row["留言编号"].strip()
        if not msg_id:
            continue
        out.append(
            Message(
                id=msg_id,
                user=row.get("留言用户", "").strip(),
                title=row["留言主题"].strip(),
                text=row["留言详情"].strip(),
                at=parse_time(row["留言时间"]),
                likes=_int(row.get("点赞数")),
                dislikes=_int(row.get("反对数")),
                resolved=bool(row.get("答复意见", "").strip()) if has_reply else None,
            )
        )
    return out


# ---------------------------------------------------------------------------------------
# Clustering and scoring

_TITLE_WEIGHT, _BODY_WEIGHT, _WORD_WEIGHT = 0.45, 0.35, 0.2
_BODY_CHARS = 200
_PLACE_CHARS = 100
_BLOCK = 512
_MAX_LINKAGE = 2500
_WORD_STOP = frozenset(
    {"问题", "关于", "反映", "投诉", "建议", "咨询", "请问", "希望", "什么", "为什么", "是否",
     "如何", "怎么", "何时", "能否", "可以", "合理", "严重", "要求", "请求", "举报", "情况"}
)  # fmt: skip


@dataclass
class _Prepared:
    title: str
    body: str
    title_words: list[str]
    mentions: list[Mention]


def _prepare(message: Message) -> _Prepared:
    title = normalize(message.title)
    body = normalize(message.text)
    title_words = [
        w
        for clause in _CLAUSE.split(title)
        if clause
        for w, admin in _segment(clause)
        if not admin and len(w) >= 2 and w not in _WORD_STOP and re.search(r"\w", w)
    ]
    hint = normalize(message.place_hint or "")
    found = mentions(f"{hint}。{title}。{body[:_PLACE_CHARS]}")
    return _Prepared(title, body, title_words, found)


def _strip_admin(text: str) -> str:
    return _ADMIN.sub(" ", text)


def _features(prepared: Sequence[_Prepared]) -> tuple[sparse.csr_matrix, list[str], int]:
    """Weighted, concatenated TF-IDF blocks (rows of norm <= 1) and the word vocabulary."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    n = len(prepared)
    min_df = 2 if n >= 50 else 1
    # In a small batch document frequencies say little (the problem all texts share would
    # weigh least): plain term frequencies there, TF-IDF from 200 messages on. Bigrams in
    # more than half of the texts of a big batch are boilerplate ("您好", "领导").
    big = n >= 200
    blocks = []
    char_title = TfidfVectorizer(
        analyzer="char", ngram_range=(2, 3), sublinear_tf=True, min_df=min_df, use_idf=big
    )
    char_body = TfidfVectorizer(
        analyzer="char",
        ngram_range=(2, 2),
        sublinear_tf=True,
        min_df=min_df,
        max_df=0.5 if big else 1.0,
        use_idf=big,
    )
    word = TfidfVectorizer(analyzer=lambda ws: ws, sublinear_tf=True, min_df=1, use_idf=big)
    for weight, vec, docs in (
        (_TITLE_WEIGHT, char_title, [_strip_admin(p.title) for p in prepared]),
        (_BODY_WEIGHT, char_body, [_strip_admin(p.body[:_BODY_CHARS]) for p in prepared]),
        (_WORD_WEIGHT, word, [p.title_words for p in prepared]),
    ):
        try:
            matrix = vec.fit_transform(docs)
        except ValueError:  # empty vocabulary (tiny or empty inputs)
            matrix = sparse.csr_matrix((n, 1))
        blocks.append(matrix * math.sqrt(weight))
    word_offset = blocks[0].shape[1] + blocks[1].shape[1]
    vocab = list(word.get_feature_names_out()) if hasattr(word, "vocabulary_") else []
    return sparse.hstack(blocks, format="csr"), vocab, word_offset


def _suffix_keys(key: str, known: set[str]) -> list[str]:
    """``key`` and the known keys it ends with ("万科魅力之城" -> "魅力之城")."""
    out = [key]
    for i in range(1, len(key) - 2):
        if key[i:] in known:
            out.append(key[i:])
    return out


def _place_keys(prepared: Sequence[_Prepared]) -> list[set[str]]:
    """Per message, the keys of the specific places it names; a longer name also under
    a shorter name it ends with, when that one is used alone elsewhere and is a name of
    its own (three characters or more, no dictionary word: "魅力之城", not "幼儿园")."""
    tags = _tags()
    known = {
        m.key
        for p in prepared
        for m in p.mentions
        if m.specific and m.kind != "group" and len(m.key) >= 3 and m.key not in tags
    }
    return [
        {
            k
            for m in p.mentions
            if m.specific and m.kind != "group"
            for k in _suffix_keys(m.key, known)
        }
        for p in prepared
    ]


def _place_matrix(keys_per_message: Sequence[set[str]]) -> sparse.csr_matrix:
    """Message x specific-place incidence, for places named by 2 .. 2% of messages."""
    n = len(keys_per_message)
    df: Counter[str] = Counter()
    for keys in keys_per_message:
        df.update(keys)
    limit = max(30, int(0.02 * n))
    index = {k: i for i, k in enumerate(k for k, c in df.items() if 2 <= c <= limit)}
    rows, cols = [], []
    for r, keys in enumerate(keys_per_message):
        for key in keys:
            if key in index:
                rows.append(r)
                cols.append(index[key])
    data = np.ones(len(rows))
    return sparse.csr_matrix((data, (rows, cols)), shape=(n, max(1, len(index))))


class _Similarity:
    """Combined similarity of any rows against any rows (text + place bonus) x time."""

    def __init__(
        self,
        x: sparse.csr_matrix,
        places: sparse.csr_matrix,
        days: np.ndarray,
        window_days: float,
        place_bonus: float,
    ) -> None:
        self.x, self.xt = x, x.T.tocsc()
        self.places, self.places_t = places, places.T.tocsc()
        self.days = days
        self.window = window_days
        self.bonus = place_bonus

    def block(self, rows: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        if cols is None:
            text = (self.x[rows] @ self.xt).toarray()
            shared = (self.places[rows] @ self.places_t).toarray()
            col_days = self.days
        else:
            text = (self.x[rows] @ self.x[cols].T).toarray()
            shared = (self.places[rows] @ self.places[cols].T).toarray()
            col_days = self.days[cols]
        sim = text + self.bonus * (shared > 0)
        gap = np.abs(self.days[rows][:, None] - col_days[None, :])
        with np.errstate(invalid="ignore"):
            far = np.where(np.isnan(gap), 0.0, np.maximum(gap - self.window, 0.0))
        result: np.ndarray = sim * np.power(0.5, far / self.window)
        return result


def _graph(similarity: _Similarity, n: int, link: float) -> sparse.csr_matrix:
    rows_out: list[np.ndarray] = []
    cols_out: list[np.ndarray] = []
    for start in range(0, n, _BLOCK):
        rows = np.arange(start, min(n, start + _BLOCK))
        sim = similarity.block(rows)
        r, c = np.nonzero(sim >= link)
        keep = c > rows[r]
        rows_out.append(rows[r[keep]])
        cols_out.append(c[keep])
    r_all = np.concatenate(rows_out) if rows_out else np.array([], dtype=int)
    c_all = np.concatenate(cols_out) if cols_out else np.array([], dtype=int)
    return sparse.csr_matrix((np.ones(len(r_all)), (r_all, c_all)), shape=(n, n))


def _split(
    similarity: _Similarity, members: np.ndarray, link: float, merge: float
) -> list[np.ndarray]:
    """Average-linkage clusters inside one connected component."""
    m = len(members)
    if m > _MAX_LINKAGE:
        # Too big for a dense linkage: cut the component's graph at a higher threshold.
        higher = min(link + 0.1, merge)
        sub = similarity.block(members, members)
        np.fill_diagonal(sub, 0.0)
        graph = sparse.csr_matrix(sub >= (higher if higher > link else link + 0.05))
        _, labels = connected_components(graph, directed=False)
        out: list[np.ndarray] = []
        for label in np.unique(labels):
            part = members[labels == label]
            if len(part) >= 2:
                out.extend(_split(similarity, part, higher, merge))
        return out
    sim = np.clip(similarity.block(members, members), 0.0, 1.0)
    dist = 1.0 - (sim + sim.T) / 2.0
    np.fill_diagonal(dist, 0.0)
    tree = linkage(squareform(dist, checks=False), method="average")
    labels = fcluster(tree, t=1.0 - merge, criterion="distance")
    return [members[labels == label] for label in np.unique(labels)]


def _merge_by_place(
    clusters: list[np.ndarray],
    place_keys: Sequence[set[str]],
    x: sparse.csr_matrix,
    days: np.ndarray,
    window_days: float,
    related: float,
) -> list[np.ndarray]:
    """Join clusters (and single messages) that name the same specific place, lie within
    ``window_days`` of each other and whose mean texts are at least ``related`` similar:
    one problem at one place, written in different words (which average linkage keeps
    apart)."""
    by_key: defaultdict[str, list[int]] = defaultdict(list)
    for c, members in enumerate(clusters):
        support: Counter[str] = Counter()
        for i in members:
            support.update(place_keys[i])
        need = max(1, math.ceil(0.5 * len(members)))
        for key, count in support.items():
            if count >= need:
                by_key[key].append(c)
    parent = list(range(len(clusters)))

    def find(c: int) -> int:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    # cluster centroids, sparse, rows of unit length
    rows = np.concatenate([np.full(len(m), c) for c, m in enumerate(clusters)])
    cols = np.concatenate(clusters)
    weights = np.concatenate([np.full(len(m), 1.0 / len(m)) for m in clusters])
    means = sparse.csr_matrix((weights, (rows, cols)), shape=(len(clusters), x.shape[0])) @ x
    norms = np.sqrt(np.asarray(means.multiply(means).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    centroids = sparse.csr_matrix(sparse.diags(1.0 / norms) @ means)

    def span(c: int) -> tuple[float, float] | None:
        known = days[clusters[c]]
        known = known[~np.isnan(known)]
        return (float(known.min()), float(known.max())) if len(known) else None

    for members_of_key in by_key.values():
        if len(members_of_key) < 2 or len(members_of_key) > 200:
            continue
        vectors = centroids[members_of_key]
        sims = (vectors @ vectors.T).toarray()
        spans = [span(c) for c in members_of_key]
        for a in range(len(members_of_key)):
            for b in range(a + 1, len(members_of_key)):
                if sims[a, b] >= related and _near(spans[a], spans[b], window_days):
                    parent[find(members_of_key[a])] = find(members_of_key[b])
    joined: defaultdict[int, list[int]] = defaultdict(list)
    for c, members in enumerate(clusters):
        joined[find(c)].extend(int(i) for i in members)
    return [np.array(sorted(members)) for members in joined.values()]


def _near(a: tuple[float, float] | None, b: tuple[float, float] | None, window: float) -> bool:
    """Whether two time spans (in days; None = unknown) are at most ``window`` apart."""
    if a is None or b is None:
        return True
    return max(a[0], b[0]) - min(a[1], b[1]) <= window


def _choose_place(
    prepared: Sequence[_Prepared], place_keys: Sequence[set[str]], members: np.ndarray
) -> str | None:
    """The place (or case, or group) most of the cluster's messages name: named by at
    least a quarter of them (and two); places before areas before groups; the longer
    name on a tie. Shown as the cluster's most common way of writing it (the longer way
    on a tie: "A市伊景园滨河苑" over "A市伊景园")."""
    priority = {"place": 3, "event": 3, "area": 2, "group": 1}
    support: Counter[str] = Counter()
    kinds: dict[str, str] = {}
    surfaces: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for i in members:
        keys = set(place_keys[i])
        for m in prepared[i].mentions:
            if m.kind == "group" and m.specific:
                keys.add(m.key)
            kinds.setdefault(m.key, m.kind)
        support.update(keys)
        for m in prepared[i].mentions:
            for key in keys:
                if key in m.surface:
                    surfaces[key][m.surface] += 1
    need = max(2, math.ceil(0.25 * len(members)))
    candidates = [
        (
            count * priority[kinds.get(key, "place")],
            priority[kinds.get(key, "place")],
            len(key),
            key,
        )
        for key, count in support.items()
        if count >= need and surfaces[key]
    ]
    if not candidates:
        return None
    best = max(candidates)[3]
    return max(surfaces[best].items(), key=lambda item: (item[1], len(item[0])))[0]


def hotness(
    *,
    n_messages: int,
    n_users: int,
    likes: int = 0,
    dislikes: int = 0,
    growth: float = 0.0,
    unresolved_share: float | None = None,
    has_place: bool = True,
) -> float:
    """The hotness score of a cluster (see the module docstring); grows with each of
    messages, callers, votes, growth and the unresolved share."""
    base = (
        math.log1p(max(n_users, 0))
        + 0.5 * math.log1p(max(n_messages, 0))
        + 0.3 * math.log1p(max(likes, 0) + max(dislikes, 0) / 2)
    )
    factor = 1.0 + 0.25 * math.tanh(max(growth, 0.0))
    factor *= 1.0 if unresolved_share is None else 0.8 + 0.4 * unresolved_share
    factor *= 1.0 if has_place else 0.85
    return round(10.0 * base * factor, 2)


def _trim(text: str, limit: int = 48) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cluster(
    messages: Sequence[Message],
    *,
    window_days: float = 30.0,
    link: float = 0.3,
    merge: float = 0.4,
    place_bonus: float = 0.25,
    related: float = 0.3,
    min_messages: int = 2,
    min_users: int = 2,
    as_of: datetime | None = None,
) -> list[HotIssue]:
    """Hot issues among ``messages``, hottest first (rank 1 = hottest).

    See the module docstring for the similarity, the clustering and the score.
    """
    if window_days <= 0:
        raise ValueError("window_days must be positive")
    messages = list(messages)
    n = len(messages)
    if n < 2:
        return []
    prepared = [_prepare(m) for m in messages]
    x, vocab, word_offset = _features(prepared)
    known = [m.at for m in messages if m.at is not None]
    origin = min(known) if known else datetime(2000, 1, 1)  # noqa: DTZ001 - naive local
    days = np.array([(m.at - origin).total_seconds() / 86400 if m.at else np.nan for m in messages])
    place_keys = _place_keys(prepared)
    similarity = _Similarity(x, _place_matrix(place_keys), days, window_days, place_bonus)
    graph = _graph(similarity, n, link)
    _, labels = connected_components(graph, directed=False)
    groups: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        groups[int(label)].append(i)
    clusters: list[np.ndarray] = []
    for component in groups.values():
        if len(component) >= 2:
            clusters.extend(_split(similarity, np.array(component), link, merge))
        else:
            clusters.append(np.array(component))
    clusters = _merge_by_place(clusters, place_keys, x, days, window_days, related)

    reference = as_of or (max(known) if known else None)
    half = timedelta(days=window_days / 2)
    issues: list[HotIssue] = []
    for members in clusters:
        if len(members) < min_messages:
            continue
        chosen = [messages[i] for i in members]
        users = {m.user or f"#{m.id}" for m in chosen}
        if len(users) < min_users:
            continue
        issues.append(
            _issue(
                chosen,
                members,
                prepared,
                place_keys,
                similarity,
                x,
                vocab,
                word_offset,
                reference,
                half,
            )
        )
    issues.sort(key=lambda issue: (-issue.score, issue.message_ids[0]))
    for rank, issue in enumerate(issues, start=1):
        issue.rank = rank
    return issues


def _issue(
    chosen: list[Message],
    members: np.ndarray,
    prepared: Sequence[_Prepared],
    place_keys: Sequence[set[str]],
    similarity: _Similarity,
    x: sparse.csr_matrix,
    vocab: list[str],
    word_offset: int,
    reference: datetime | None,
    half: timedelta,
) -> HotIssue:
    users = {m.user or f"#{m.id}" for m in chosen}
    times = sorted(m.at for m in chosen if m.at is not None)
    likes = sum(max(0, m.likes) for m in chosen)
    dislikes = sum(max(0, m.dislikes) for m in chosen)
    known = [m.resolved for m in chosen if m.resolved is not None]
    unresolved = (sum(1 for r in known if not r) / len(known)) if known else None
    growth = 0.0
    if reference is not None and times:
        recent = sum(1 for t in times if reference - half < t <= reference)
        earlier = sum(1 for t in times if reference - 2 * half < t <= reference - half)
        growth = (recent - earlier) / max(earlier, 1)
    place = _choose_place(prepared, place_keys, members)
    score = hotness(
        n_messages=len(chosen),
        n_users=len(users),
        likes=likes,
        dislikes=dislikes,
        growth=growth,
        unresolved_share=unresolved,
        has_place=place is not None,
    )

    sim = similarity.block(members, members)
    np.fill_diagonal(sim, 0.0)
    central = int(np.argmax(sim.sum(axis=1)))
    title = prepared[members[central]].title or _trim(prepared[members[central]].body, 30)
    description = title
    if place and _place_key(place) not in title:
        description = f"{place}：{title}"
    centroid = np.asarray(x[members].mean(axis=0)).ravel()[word_offset:]
    keywords: list[str] = []
    for idx in np.argsort(-centroid)[:12]:
        if centroid[idx] <= 0 or idx >= len(vocab):
            break
        term = vocab[idx]
        if place and term in place:
            continue
        keywords.append(term)
        if len(keywords) == 4:
            break
    ordered = sorted(chosen, key=lambda m: (m.at is None, m.at.isoformat() if m.at else "", m.id))
    return HotIssue(
        rank=0,
        score=score,
        start=times[0] if times else None,
        end=times[-1] if times else None,
        place=place,
        description=_trim(description),
        message_ids=[m.id for m in ordered],
        n_messages=len(chosen),
        n_users=len(users),
        growth=round(growth, 3),
        likes=likes,
        dislikes=dislikes,
        unresolved_share=None if unresolved is None else round(unresolved, 3),
        keywords=keywords,
    )


def _place_key(surface: str) -> str:
    key = _ADMIN.sub("", surface)
    for tail in _KEY_TAILS:
        if key.endswith(tail) and len(key) - len(tail) >= 2:
            key = key[: -len(tail)]
    return key


def top_issues(messages: Iterable[Message], n: int = 10, **options: Any) -> list[HotIssue]:
    """The ``n`` hottest issues (a convenience over ``cluster``)."""
    return cluster(list(messages), **options)[:n]
