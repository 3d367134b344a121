"""A handling notice as a PDF document (A4), with a Chinese font embedded.

fpdf2 subsets and embeds OpenType fonts with CFF outlines (as a CIDFontType0 with a
``FontFile3`` stream) and picks one face out of a TrueType/OpenType collection, so the
system's Noto Sans CJK (``fonts-noto-cjk``: ``.ttc`` files of CFF fonts) is embedded as it
is: a reader needs no Chinese font of its own. The font is found on the machine — through
fontconfig (``fc-match``) or at the usual paths of Debian, Fedora, macOS and Windows —
and never fetched or shipped; without one the PDF is refused with a clear error
(503, ``cjk_font_missing``).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from fontTools.ttLib import TTCollection, TTFont
from fpdf import FPDF
from fpdf.enums import Align, WrapMode, XPos, YPos
from fpdf.fonts import FontFace

from zhengshu.kernel.calendar import SHANGHAI
from zhengshu.kernel.errors import DomainError
from zhengshu.modules.hotline.reports.notice import Notice, late_label

MEDIA_TYPE = "application/pdf"
FAMILY = "zh"
ISSUER = "东莞市政务服务和数据管理局"

# Candidates after fontconfig's answer: regular face, bold face (None: same file).
KNOWN_FONTS: list[tuple[str, str | None]] = [
    (
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    ),
    (
        "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
        "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Bold.ttc",
    ),
    (
        "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
        "/usr/share/fonts/noto-cjk/NotoSansCJK-Bold.ttc",
    ),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", None),
    ("/usr/share/fonts/truetype/arphic/uming.ttc", None),
    ("/System/Library/Fonts/Supplemental/Songti.ttc", None),
    ("C:/Windows/Fonts/msyh.ttc", "C:/Windows/Fonts/msyhbd.ttc"),
    ("C:/Windows/Fonts/simsun.ttc", None),
]


class FontMissing(DomainError):
    status_code: ClassVar[int] = 503
    default_code: ClassVar[str] = "cjk_font_missing"


@dataclass(frozen=True)
class FontFile:
    path: str
    index: int  # the face inside a collection (0 for a single font)
    name: str


def _simplified_face(path: str) -> FontFile | None:
    """The Simplified Chinese face of a font file (``... SC`` in a CJK collection)."""
    try:
        if path.lower().endswith((".ttc", ".otc")):
            faces = TTCollection(path, lazy=True).fonts
        else:
            faces = [TTFont(path, lazy=True)]
    except Exception:  # an unreadable font file is just not a candidate
        return None
    named = [(i, str(f["name"].getDebugName(4) or "")) for i, f in enumerate(faces)]
    for i, name in named:
        if name.endswith((" SC", " SC Regular", " SC Bold")) or " SC " in name:
            return FontFile(path, i, name)
    for i, face in enumerate(faces):  # no SC face: any face that maps common hanzi
        cmap = face.getBestCmap() or {}
        if all(ord(c) in cmap for c in "东莞市热线通报"):
            return FontFile(path, i, named[i][1])
    return None


def _fontconfig(style: str) -> str | None:
    if shutil.which("fc-match") is None:
        return None
    try:
        out = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["fc-match", "-f", "%{file}", f"sans-serif:lang=zh-cn:style={style}"],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


@functools.cache
def find_fonts() -> tuple[FontFile, FontFile] | None:
    """(regular, bold) Chinese faces on this machine, or None."""
    candidates: list[tuple[str, str | None]] = []
    regular = _fontconfig("Regular")
    if regular:
        candidates.append((regular, _fontconfig("Bold")))
    candidates.extend(KNOWN_FONTS)
    for reg_path, bold_path in candidates:
        if not Path(reg_path).is_file():
            continue
        reg = _simplified_face(reg_path)
        if reg is None:
            continue
        bold = _simplified_face(bold_path) if bold_path and Path(bold_path).is_file() else None
        return reg, bold or reg
    return None


# Chinese line breaking (the usual 禁则): these never start a line (they hang in the
# margin instead), those never end one; a run of digits and Latin letters is not split.
NO_START = set("，。、；：？！）》」』”’%％·…—")
NO_END = set("（《「『“‘")
_LATIN = re.compile(r"[0-9A-Za-z.,+\-/]+|.", re.DOTALL)


def wrap_lines(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """Break ``text`` into lines no wider than ``width`` (a closing mark may hang)."""
    lines: list[str] = []
    line, used = "", 0.0
    for token in _LATIN.findall(text):
        size = measure(token)
        if line and used + size > width and token not in NO_START:
            carry = ""
            while line and line[-1] in NO_END:
                carry, line = line[-1] + carry, line[:-1]
            lines.append(line)
            line, used = carry, measure(carry) if carry else 0.0
        line += token
        used += size
    if line:
        lines.append(line)
    return lines


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def _change(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "%":
        return "持平" if abs(value) < 0.05 else f"{value:+.1f} 个百分点"
    return f"{int(value):+d} 件"


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return f"{int(value):,} 件" if unit == "件" else _pct(value)


class _Document(FPDF):
    def __init__(self, notice: Notice) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.notice = notice
        self.set_margins(18, 18, 18)
        self.set_auto_page_break(auto=True, margin=18)
        self.set_title(f"{notice.title} {notice.period.label}")
        self.set_author(ISSUER)
        self.set_creator("zhengshu")
        self.set_lang("zh-CN")

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FAMILY, size=8)
        self.set_text_color(110)
        where = f"{self.notice.title} · {self.notice.period.label}"
        self.cell(0, 5, f"{where} · 第 {self.page_no()} 页 / 共 {{nb}} 页", align=Align.C)
        self.set_text_color(0)

    def heading(self, text: str) -> None:
        if self.will_page_break(22):
            self.add_page()
        self.ln(3)
        self.set_font(FAMILY, "B", 13)
        self.cell(0, 8, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(FAMILY, size=9.5)

    def paragraph(self, text: str, size: float = 11) -> None:
        self.set_font(FAMILY, size=size)
        for line in wrap_lines("\u3000\u3000" + text, self.epw, self.get_string_width):
            self.cell(0, 7, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def grid(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[str]],
        widths: Sequence[float],
        *,
        empty: str,
        aligns: Sequence[str] | None = None,
    ) -> None:
        self.set_font(FAMILY, size=9)
        if not rows:
            self.set_text_color(110)
            self.cell(0, 7, empty, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.set_text_color(0)
            return
        with self.table(
            col_widths=tuple(widths),
            width=self.epw,
            line_height=5.5,
            wrapmode=WrapMode.CHAR,
            text_align=tuple(aligns or ["LEFT"] * len(headers)),
            headings_style=FontFace(emphasis="BOLD", fill_color=(221, 231, 243)),
            padding=(1, 1.5),
            repeat_headings=1,
        ) as table:
            table.row(list(headers))
            for row in rows:
                table.row([str(c) for c in row])
        self.ln(2)


def render_pdf(notice: Notice) -> bytes:
    """The notice as a PDF document: title, period, text, and the five tables."""
    fonts = find_fonts()
    if fonts is None:
        raise FontMissing(
            "服务器上未找到中文字体，无法生成 PDF，请安装 fonts-noto-cjk",
            "no Chinese font on the server (install fonts-noto-cjk)",
        )
    regular, bold = fonts
    doc = _Document(notice)
    doc.add_font(FAMILY, "", regular.path, collection_font_number=regular.index)
    doc.add_font(FAMILY, "B", bold.path, collection_font_number=bold.index)
    doc.add_page()

    doc.set_font(FAMILY, "B", 20)
    doc.set_text_color(178, 34, 34)
    doc.multi_cell(0, 11, notice.title, align=Align.C, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    doc.set_text_color(0)
    doc.set_font(FAMILY, size=12)
    scope = "全市" if notice.city_wide else notice.scope_name
    doc.cell(
        0,
        8,
        f"（{notice.period.label} · {scope}）",
        align=Align.C,
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    doc.set_font(FAMILY, size=9.5)
    generated = notice.generated_at.astimezone(SHANGHAI)
    doc.cell(
        0,
        6,
        f"{ISSUER}　{generated.year}年{generated.month}月{generated.day}日",
        align=Align.C,
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    doc.set_draw_color(178, 34, 34)
    doc.set_line_width(0.6)
    doc.line(doc.l_margin, doc.get_y() + 2, doc.w - doc.r_margin, doc.get_y() + 2)
    doc.set_draw_color(0)
    doc.set_line_width(0.2)
    doc.ln(6)

    doc.heading("一、总体情况")
    for text in notice.text:
        doc.paragraph(text)
    doc.ln(2)
    word = notice.period.previous_word
    doc.grid(
        ["指标", "本期", word, "变化", "分子 / 分母"],
        [
            [
                f.label,
                _figure(f.value, f.unit),
                _figure(f.previous, f.unit),
                _change(f.change, f.unit),
                "—" if f.denominator is None else f"{f.numerator or 0} / {f.denominator}",
            ]
            for f in notice.figures
        ],
        [30, 30, 30, 34, 50],
        empty="",
        aligns=["LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"],
    )

    doc.heading("二、单位排名")
    doc.paragraph(f"排名方法：{notice.ranking_method}。", size=9.5)
    doc.grid(
        ["排名", "单位", "受理量", "按时办结率", "满意率", "解决率", "综合得分"],
        [
            [
                str(u.rank),
                u.name,
                str(u.orders),
                _pct(u.on_time_closure_rate),
                _pct(u.satisfaction_rate),
                _pct(u.resolution_rate),
                "—" if u.score is None else f"{u.score:.2f}",
            ]
            for u in notice.ranking
        ]
        + [
            ["—", f"{u.name}（暂无可评价工单）", str(u.orders), "—", "—", "—", "—"]
            for u in notice.unranked
        ],
        [14, 50, 18, 24, 20, 20, 28],
        empty="本期没有可排名的单位",
        aligns=["CENTER", "LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"],
    )
    if notice.bottom:
        doc.paragraph("排名靠后单位：" + "、".join(u.name for u in notice.bottom) + "。", size=9.5)

    doc.heading(f"三、超期工单（{notice.overdue_total} 件次）")
    doc.grid(
        ["工单编号", "标题", "承办单位", "超期环节", "时限", "超期时长"],
        [
            [
                o.number,
                o.title,
                o.unit or "—",
                o.stage,
                o.due_at.astimezone(SHANGHAI).strftime("%m-%d %H:%M"),
                late_label(o.late_minutes) + ("" if o.done_at else "（仍超期）"),
            ]
            for o in notice.overdue
        ],
        [35, 43, 28, 16, 22, 30],
        empty="本期没有超期工单",
    )

    doc.heading(f"四、重办工单（{notice.reworked_total} 件次）")
    doc.grid(
        ["工单编号", "标题", "承办单位", "重办时间", "回访评价", "次数", "重办原因"],
        [
            [
                r.number,
                r.title,
                r.unit or "—",
                r.reworked_at.astimezone(SHANGHAI).strftime("%m-%d %H:%M"),
                (r.satisfaction or "—")
                + ("" if r.solved is None else ("，已解决" if r.solved else "，未解决")),
                str(r.rework_count),
                r.reason or "—",
            ]
            for r in notice.reworked
        ],
        [35, 33, 22, 20, 26, 10, 28],
        empty="本期没有重办工单",
    )

    doc.heading(f"五、满意度（回访评价 {notice.satisfaction_total} 件）")
    doc.grid(
        ["评价", "件数", "占比"],
        [[lvl.label, str(lvl.count), _pct(lvl.share)] for lvl in notice.satisfaction],
        [60, 57, 57],
        empty="",
        aligns=["LEFT", "RIGHT", "RIGHT"],
    )
    return bytes(doc.output())
