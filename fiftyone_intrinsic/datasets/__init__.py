"""The FiftyOne layer: turns the samples of a dataset or view into arrays, calls
:mod:`fiftyone_intrinsic.core`, and stores the results as runs (fields, tags, saved views
named by :mod:`.schema`, typed results in :mod:`.results`).

Imports :mod:`fiftyone_intrinsic.core`, never the reverse. One module per method
(``dimension``, ``sharpness``, ``representation``, ``robustness``, ``scaling``), the run
classes and functions in ``runs``, the shared plumbing in ``storage``, ``progress``,
``labels``, ``features`` and ``describe``; ``importers``, ``summary``, ``review`` and ``cli`` on top.
"""
