"""Holding a run key from validation to completion, so that concurrent runs, crashes and
failures never lose or mix anybody's data.

A run starts by *claiming* its key (:func:`claim_run`): it checks that every sample field,
tag and saved view it would write is free, then registers an *incomplete* run on the
collection it is computed on with a compare-and-set on the dataset document, so that of
two processes claiming the same key at the same time exactly one wins. The winner
computes, writes through its :class:`RunClaim` (which records each sample it tags before
tagging it), saves the results and only then marks the run complete. On any failure,
Ctrl-C included, it removes its own run and exactly what that run wrote; a process killed
outright leaves a run that every listing shows as incomplete, and deleting it removes what
it had written.

Replacing an existing run (``overwrite=True``) keeps the old run until the new one is
complete: the new run is written under a companion key (``<key>_incomplete``) and swapped
in at the end, when the old run is deleted and the new run's fields, tags and saved views
are renamed to the key's names.
"""

from __future__ import annotations

import datetime
import os
import socket
from copy import deepcopy
from typing import Callable, Sequence

from .runs import (
    CONFIG_CLASSES,
    IntrinsicRunConfig,
    check_names_free,
    move_run_names,
    names_of,
    validate_run_key,
)
from .schema import RunNames, RunSchema

__all__ = ["claim_run", "RunClaim", "REPLACEMENT_SUFFIX", "compare_and_set_run"]

#: Suffix of the key a replacement run is computed under until it is complete.
REPLACEMENT_SUFFIX = "_incomplete"


def claim_run(samples, run_key: str, schema: RunSchema, *, overwrite: bool = False,
              attacks: Sequence[str] = ()) -> "RunClaim":
    """Validate ``run_key`` and every name the run would write, and register an incomplete
    run that holds the key.

    Args:
        samples: the dataset or view the run is computed on (the run is registered on it,
            so ``load_run_view`` gives it back).
        run_key: an identifier.
        schema: what runs of this method write.
        overwrite (False): replace an existing complete run of the same method; the old run
            stays until the new one is complete.
        attacks (()): for robustness runs, the attacks (they name per-attack fields).

    Raises:
        ValueError: an invalid key, a key that exists (without ``overwrite``), that holds an
            incomplete run, another method's run or another tool's run, a name that the user
            or another run owns, or a key that another process claimed first.

    Under torch.distributed only rank 0 claims and writes; other ranks get a claim that
    does nothing.
    """
    from ..core.collectives import rank_and_world

    if rank_and_world()[0] != 0:
        return _NoClaim(run_key, schema.names(run_key, attacks))
    dataset = samples._root_dataset
    dataset.reload()  # decide on the database's current runs, not this process's copy
    existing = _existing(dataset, run_key, schema.method, overwrite)
    write_key = run_key
    if existing is not None:
        write_key = run_key + REPLACEMENT_SUFFIX
        if write_key in dataset.list_runs():
            raise ValueError(
                f"Run {run_key!r} is already being replaced by another process (its "
                f"replacement {write_key!r} is incomplete). Wait for it, or delete "
                f"{write_key!r} if that process is gone."
            )
    names = schema.names(write_key, attacks)
    final = schema.names(run_key, attacks)
    owned = names_of(existing, run_key) if existing is not None else None
    tags = set(dataset.distinct("tags"))
    check_names_free(dataset, names, existing_tags=tags)
    if write_key != run_key:
        check_names_free(dataset, final, owned=owned, existing_tags=tags)
    config = CONFIG_CLASSES[schema.method](
        status="incomplete", owner=_owner(), replaces=run_key if existing is not None else None,
        **_recorded_names(names),
    )
    run_id = _register(samples, write_key, config)
    return RunClaim(samples, run_key, write_key, run_id, names, final, existing)


class RunClaim:
    """A run key this process holds; use it as a context manager around the computation.

    Attributes:
        names: the names to write now (the companion key's while replacing a run).
        run_key: the key the run will have when complete.
    """

    def __init__(self, samples, run_key, write_key, run_id, names: RunNames, final: RunNames, replaced):
        self.samples = samples
        self.run_key = run_key
        self.names = names
        self._write_key = write_key
        self._run_id = run_id
        self._final = final
        self._replaced = replaced  # the config of the run being replaced, or None
        self._replaced_id = _run_id_in_db(samples._root_dataset, run_key) if replaced is not None else None
        self._config = None
        self._done = False

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is not None and not self._done:
            self.release()
        return False

    # -- writing --------------------------------------------------------------------------

    def store(self, config: IntrinsicRunConfig, results_cls, values: dict, write: Callable[[], None]) -> None:
        """Write the run and mark it complete; on failure remove only what it wrote.

        Args:
            config: from :func:`~.storage.make_config` with :attr:`names`.
            results_cls: the method's results class.
            values: the results' attributes (JSON).
            write: writes the fields (with :attr:`names`), tags (:meth:`tag_samples`) and
                saved views (:meth:`save_view`).
        """
        dataset = self.samples._root_dataset
        self._require_held()
        config.status = "incomplete"
        config.owner = _owner()
        config.replaces = self.run_key if self._replaced is not None else None
        config.tagged = {}
        for attribute, value in _recorded_names(self.names).items():
            setattr(config, attribute, value)
        self._config = config
        try:
            dataset.update_run_config(self._write_key, config)
            write()
            dataset.save_run_results(self._write_key, results_cls(dataset, config, self._write_key, **values), overwrite=True)
            if self._replaced is not None:
                self._swap_in()
            config.status = "complete"
            config.replaces = None
            dataset.update_run_config(self._write_key, config)
            dataset.reload()  # this process now sees the run as any other process will
        except BaseException:
            self.release()
            raise
        self._done = True

    def tag_samples(self, role: str, sample_ids: Sequence[str]) -> None:
        """Tag ``sample_ids`` with the run's ``role`` tag, recording them first so that a
        deletion untags exactly these samples."""
        if not sample_ids:
            return
        tag = self.names.tag(role)
        self._config.tagged[tag] = list(sample_ids)
        dataset = self.samples._root_dataset
        dataset.update_run_config(self._write_key, self._config)
        dataset.select(list(sample_ids)).tag_samples(tag)

    def save_view(self, role: str, view, description: str) -> None:
        """Save ``view`` as the run's ``role`` saved view."""
        self.samples._root_dataset.save_view(self.names.view(role), view, description=description)

    # -- completing and undoing -----------------------------------------------------------

    def _swap_in(self):
        """Delete the replaced run, then give this run its key and names."""
        dataset = self.samples._root_dataset
        if _run_id_in_db(dataset, self.run_key) != self._replaced_id:
            raise ValueError(
                f"Run {self.run_key!r} changed while this run was computed (another process "
                "replaced or deleted it); this run was not stored."
            )
        dataset.reload()
        dataset.delete_run(self.run_key)
        if not compare_and_set_run(dataset, self.run_key, self._run_id, old_key=self._write_key):
            raise ValueError(f"Run key {self.run_key!r} was claimed by another process; this run was not stored.")
        self._write_key = self.run_key
        move_run_names(dataset, self.run_key, self._config, self._final)
        self.names = self._final

    def release(self) -> None:
        """Remove this run and what it wrote (and nothing else), if this process still
        holds it."""
        dataset = self.samples._root_dataset
        try:
            dataset.reload()
            if _run_id_in_db(dataset, self._write_key) == self._run_id:
                dataset.delete_run(self._write_key)
        finally:
            self._done = True

    def _require_held(self):
        if _run_id_in_db(self.samples._root_dataset, self._write_key) != self._run_id:
            raise ValueError(
                f"Run {self._write_key!r} was deleted by another process while it was being "
                "computed; nothing was stored."
            )


class _NoClaim:
    """The claim of a rank other than 0 under torch.distributed: writes nothing."""

    def __init__(self, run_key, names):
        self.run_key, self.names = run_key, names

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def store(self, *args, **kwargs):
        pass


# -- the database ---------------------------------------------------------------------------


def compare_and_set_run(dataset, key: str, run_id, *, old_key: str | None = None) -> bool:
    """Point the dataset's run ``key`` at the run document ``run_id`` if no run has that
    key, atomically (moving it from ``old_key`` when given, where it must point at
    ``run_id``); ``True`` when done. The dataset is reloaded afterwards."""
    import fiftyone.core.odm as foo

    query = {"_id": dataset._doc.id, f"runs.{key}": {"$exists": False}}
    update = {"$set": {f"runs.{key}": run_id}}
    if old_key is not None:
        query[f"runs.{old_key}"] = run_id
        update["$unset"] = {f"runs.{old_key}": ""}
    done = foo.get_db_conn().datasets.update_one(query, update).modified_count == 1
    if done and old_key is not None:
        foo.get_db_conn().runs.update_one({"_id": run_id}, {"$set": {"key": key}})
    dataset.reload()
    return done


def _register(samples, key: str, config) -> object:
    """Insert a run document for ``samples`` and point ``key`` at it if the key is free."""
    import fiftyone.core.odm as foo
    import fiftyone.core.view as fov
    from bson import json_util
    from fiftyone.core.odm.runs import RunDocument

    dataset = samples._root_dataset
    stages = None
    if isinstance(samples, fov.DatasetView):
        stages = [json_util.dumps(s) for s in samples._serialize(include_uuids=False)]
    doc = RunDocument(
        dataset_id=dataset._doc.id, key=key, version=_fiftyone_version(),
        timestamp=datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None),
        config=deepcopy(config.serialize()), view_stages=stages, results=None,
    )
    doc.save(upsert=True)
    if not compare_and_set_run(dataset, key, doc.id):
        foo.get_db_conn().runs.delete_one({"_id": doc.id})
        raise ValueError(
            f"Run key {key!r} on dataset {dataset.name!r} was claimed by another process a "
            "moment ago; choose another key or wait for that run."
        )
    return doc.id


def _run_id_in_db(dataset, key: str):
    """The run document id the database holds for ``key`` (``None`` if none)."""
    import fiftyone.core.odm as foo

    doc = foo.get_db_conn().datasets.find_one({"_id": dataset._doc.id}, {f"runs.{key}": 1})
    return ((doc or {}).get("runs") or {}).get(key)


def _existing(dataset, run_key: str, method: str, overwrite: bool):
    """The config of the complete run that ``overwrite`` replaces, ``None`` when the key
    is free; refuses every other case (:func:`~.runs.validate_run_key`)."""
    validate_run_key(dataset, run_key, overwrite, method)
    return dataset.get_run_info(run_key).config if run_key in dataset.list_runs() else None


def _recorded_names(names: RunNames) -> dict:
    return dict(
        fields=list(names.fields.values()), tags=list(names.tags.values()),
        saved_views=list(names.saved_views.values()),
        names=dict(fields=dict(names.fields), tags=dict(names.tags), saved_views=dict(names.saved_views)),
    )


def _owner() -> dict:
    return dict(
        host=socket.gethostname(), pid=os.getpid(),
        started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


def _fiftyone_version() -> str:
    import fiftyone.constants as foc

    return foc.VERSION
