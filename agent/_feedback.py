"""Feedback scores as a vendor's CRM files them: the Net Promoter classes
(Reichheld, "The One Number You Need to Grow", HBR 2003) over the 0-10 score
of ``feedback`` (PROTOCOL.md §5.8)."""

from __future__ import annotations

__all__ = ["nps_class"]


def nps_class(score: int) -> str:
    """``promoter`` (9-10), ``passive`` (7-8) or ``detractor`` (0-6).
    Raises ValueError for a score outside 0-10."""
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 10:
        raise ValueError(f"a score is a whole number from 0 to 10, not {score!r}")
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"
