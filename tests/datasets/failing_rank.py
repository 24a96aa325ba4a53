"""The audit command under torchrun with one rank that fails in the middle of the exact
K_F search, for test_cli.py (not a test module).

usage: python failing_rank.py FAILING_RANK audit ARGS...

On rank FAILING_RANK, ``measure_sharpness`` raises ``RuntimeError`` when it is called,
while the other ranks are already inside the search's collectives: a crash (a bug, an
out-of-memory error, a lost file) rather than a checked bad input.
"""

import os
import sys


def main(argv):
    failing_rank = int(argv[0])
    if int(os.environ.get("RANK", "0")) == failing_rank:
        from fiftyone_intrinsic.datasets import sharpness

        def crash(*args, **kwargs):
            raise RuntimeError(f"simulated crash on rank {failing_rank}")

        sharpness.measure_sharpness = crash
    from fiftyone_intrinsic.datasets.cli import main as cli_main

    return cli_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
