"""Per-level states for the dose-escalation tests."""

from services.clinical.escalation.core import DoseLevelState


def state(*counts, total=5):
    """state((3, 0), (3, 1)) -> levels 1..total; a count is (evaluable, dlts) or (evaluable, dlts, pending)."""
    return [DoseLevelState(i + 1, *counts[i]) if i < len(counts) else DoseLevelState(i + 1) for i in range(total)]
