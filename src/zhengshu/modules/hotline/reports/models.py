"""Tables of the reports: per-order facts and their daily rollup."""

from __future__ import annotations
