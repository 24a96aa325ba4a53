"""A separate process that computes a label-sharpness run, for the concurrency and crash
tests of test_claims.py (not a test module).

usage: python run_worker.py DATASET RUN_KEY START_AT PAUSE [--overwrite] [--kill-after-first-write]

Waits until the wall-clock time START_AT (so that two workers start together), pauses
PAUSE seconds at the first progress report (the computation of a large dataset, shortened),
then prints one JSON line: {"ok": true, "k_f": ...} or {"ok": false, "error": ...} (exit 3).
With --kill-after-first-write the process SIGKILLs itself right after its first sample
field is written: a crash in the middle of writing.
"""

import json
import os
import signal
import sys
import time


def main(argv):
    name, key, start_at, pause = argv[0], argv[1], float(argv[2]), float(argv[3])
    import fiftyone as fo
    import fiftyone.core.collections as foc

    import fiftyone_intrinsic as fi

    dataset = fo.load_dataset(name)
    if "--kill-after-first-write" in argv:
        original = foc.SampleCollection.set_values

        def set_values_then_die(self, *args, **kwargs):
            original(self, *args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)

        foc.SampleCollection.set_values = set_values_then_die
    paused = []

    def progress(fraction, label):
        if not paused and fraction > 0:
            paused.append(True)
            time.sleep(pause)

    while time.time() < start_at:
        time.sleep(0.005)
    try:
        result = fi.compute_label_sharpness(
            dataset, "ground_truth", run_key=key, top=5, features={"embeddings_field": "emb"},
            device="cpu", overwrite="--overwrite" in argv, progress=progress,
        )
    except ValueError as error:
        print(json.dumps({"ok": False, "error": str(error)}), flush=True)
        return 3
    print(json.dumps({"ok": True, "k_f": result.k_f}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
