"""Progress of a long computation on a collection: ``progress(fraction, label)`` calls,
or a progress bar when no callback is given."""

from __future__ import annotations

from typing import Callable

__all__ = ["StepProgress", "StageReporter"]

#: ``progress(fraction_done, label)``: fraction in [0, 1].
StepProgress = Callable[[float, str], None]


class StageReporter:
    """Turns stage-local progress into overall ``progress(fraction, label)`` calls.

    Args:
        progress: ``progress(fraction, label)``; ``None`` shows a tqdm bar.
    """

    def __init__(self, progress: StepProgress | None):
        self._bar = None
        if progress is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=1000, unit="‰", leave=False)
            progress = self._bar_progress
        self._progress = progress

    def _bar_progress(self, fraction, label):
        self._bar.set_description(label)
        self._bar.update(int(1000 * fraction) - self._bar.n)
        if fraction >= 1.0:
            self._bar.close()

    def __call__(self, fraction: float, label: str) -> None:
        self._progress(min(1.0, max(0.0, fraction)), label)

    def stage(self, start: float, stop: float, label: str):
        """A ``progress(done, total)`` callback mapped onto [start, stop]."""

        def callback(done, total):
            self(start + (stop - start) * done / max(total, 1), f"{label}: {done}/{total}")

        return callback

    def fraction(self, start: float, stop: float):
        """A ``progress(fraction, label)`` callback mapped onto [start, stop]."""
        return lambda fraction, label: self(start + (stop - start) * fraction, label)
