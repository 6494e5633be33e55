"""Losses of this group are added here (issue 3)."""

from __future__ import annotations

LOSSES = ()
