"""Calling an operator from Python: the ``__call__`` of every measuring operator."""

import fiftyone.operators as foo


def call_operator(uri, sample_collection, run_key, params, delegate):
    """Run operator ``uri`` on a dataset or view with every parameter given.

    Returns the stored run's typed results, or the queued operation when ``delegate``.
    """
    from fiftyone_intrinsic import load_intrinsic_results

    outcome = foo.execute_operator(
        uri, ctx=dict(view=sample_collection.view()), params=params, request_delegation=delegate,
    )
    if delegate:
        return outcome
    return load_intrinsic_results(sample_collection, run_key)
