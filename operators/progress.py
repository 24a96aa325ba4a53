"""Streaming a library call's progress to the App (immediate runs) or to the delegated
operation's record (delegated runs)."""

import queue
import threading
import time

#: Seconds between two progress messages sent to the App.
_MIN_INTERVAL = 0.25


def run_with_progress(ctx, work):
    """Generator that runs ``work(progress)`` and reports ``progress(fraction, label)``.

    Immediate runs execute ``work`` in a worker thread and yield ``set_progress`` triggers
    while it runs, so the App shows live progress; delegated runs call
    ``ctx.set_progress``. Use as ``result = yield from run_with_progress(ctx, work)``;
    an exception raised by ``work`` is re-raised here.
    """
    if ctx.delegated:
        return work(lambda fraction, label: ctx.set_progress(progress=fraction, label=label))
    updates = queue.Queue()
    outcome = {}

    def target():
        try:
            outcome["result"] = work(lambda fraction, label: updates.put((fraction, label)))
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error
        finally:
            updates.put(None)

    worker = threading.Thread(target=target, name="fiftyone-intrinsic", daemon=True)
    worker.start()
    latest, last_sent, finished = None, 0.0, False
    while not finished:
        try:
            item = updates.get(timeout=_MIN_INTERVAL)
        except queue.Empty:
            item = latest
        else:
            finished = item is None
            latest = latest if finished else item
        now = time.monotonic()
        if latest is not None and (finished or now - last_sent >= _MIN_INTERVAL):
            yield ctx.trigger("set_progress", dict(progress=latest[0], label=latest[1]))
            latest, last_sent = None, now
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
