"""Text normalization and word segmentation for the dispatch classifier.

Messages arrive in mixed scripts and widths: Traditional characters from some input
methods, full-width digits and letters, runs of tabs and newlines pasted from web forms.
``normalize`` maps all of them to one form (Simplified, half-width, single spaces) so that
a model sees the same features for the same words; callers keep the original text.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from typing import Any

_WHITESPACE = re.compile(r"\s+")
# Line breaks and tabs as spreadsheet exports escape them (openpyxl writes "\r" as _x000D_).
_EXCEL_ESCAPES = re.compile(r"_x00(?:0[9AaDd])_")
_lock = threading.Lock()
_converter: Any = None
_jieba_ready = False


def _t2s() -> Any:
    """The OpenCC Traditional -> Simplified converter, created once on first use."""
    global _converter  # noqa: PLW0603 - a lazily built process-wide singleton
    if _converter is None:
        with _lock:
            if _converter is None:
                import opencc

                _converter = opencc.OpenCC("t2s")
    return _converter


def normalize(text: str) -> str:
    """Return ``text`` in Simplified script, NFKC (half-width), whitespace (and the
    ``_x000D_`` escapes of spreadsheet exports) collapsed to single spaces, stripped.

    Idempotent: ``normalize(normalize(x)) == normalize(x)``.
    """
    if not text:
        return ""
    simplified = str(_t2s().convert(text))
    folded = unicodedata.normalize("NFKC", simplified)
    # NFKC may produce characters that OpenCC maps again (and vice versa); one more pass
    # of each keeps the function idempotent for such rare inputs.
    folded = unicodedata.normalize("NFKC", str(_t2s().convert(folded)))
    return _WHITESPACE.sub(" ", _EXCEL_ESCAPES.sub(" ", folded)).strip()


def _jieba() -> Any:
    """The jieba module, its default dictionary loaded once, quietly."""
    global _jieba_ready  # noqa: PLW0603 - a lazily built process-wide singleton
    import jieba

    if not _jieba_ready:
        with _lock:
            if not _jieba_ready:
                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _jieba_ready = True
    return jieba


def words(text: str) -> list[str]:
    """Jieba tokens of the normalized ``text``, without whitespace tokens."""
    return segment(normalize(text))


def segment(normalized: str) -> list[str]:
    """Jieba tokens of a text already normalized, without whitespace tokens."""
    if not normalized:
        return []
    return [w for w in _jieba().lcut(normalized) if w.strip()]


def is_word(term: str) -> bool:
    """Whether ``term`` is a word of jieba's dictionary (not just a prefix of one)."""
    return bool(_jieba().get_FREQ(term, 0))
