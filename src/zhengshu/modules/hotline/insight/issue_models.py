"""Tables of hot issues (热点问题),
the weekly top problem (每周一题) and the hard-problem list (难题清单)."""

from __future__ import annotations
