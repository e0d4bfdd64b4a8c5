"""The label set of ../shared/LABELS.md: the contract between dataset, model and API."""

from typing import Final

LABELS: Final[tuple[str, ...]] = ("complaint", "question", "aspiration", "praise", "other")
