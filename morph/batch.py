"""Batch processing of many files on Dask: features of thousands of cells, tracing of many stacks.

morph has no job system of its own: every file is one task of a ``dask.distributed`` cluster
(``client.map`` + ``as_completed``). By default morph starts a :class:`~distributed.LocalCluster`
sized to the machine (one single-threaded worker process per core, the machine's memory split
between them) and stops it at the end; give a ``client``, a ``scheduler`` address
(``tcp://HOST:PORT``) or set ``DASK_SCHEDULER_ADDRESS`` to send the same work to an existing
cluster. ``scheduler="serial"`` runs everything in the calling process (the reference path,
also handy under a debugger).

Robustness, as for a production job:

- every option and output (the scheduler, feature and tracing option names, the table, the
  log, the output folder) is checked before any work is done or anything is written;
- one failing file never stops the others: its error and traceback go to a log file and to
  the summary (``DataFrame.attrs["summary"]``), and the run goes on;
- every per-file output is written atomically (temporary file + rename), so a killed run or a
  Ctrl-C never leaves a half-written file in an output's place (a process killed between the
  write and the rename leaves a hidden ``.NAME.XXXX.part`` file, which the next run removes
  once it is a minute old);
- a run never waits for ever for workers that are gone: when the cluster has had no worker
  for ``WORKERLESS_GRACE_S`` (120 s), having had some, the files still waiting are reported
  as failed;
- re-running skips what is already done and valid. For features, each file's result is kept in
  a cache folder next to the output (``<output>.cache/``, one JSON per file) stamped with the
  source's size and modification time, the morph version and the options; for tracing, each
  SWC carries the same stamp in its header. ``redo=True`` recomputes everything.

All paths must be visible to the workers (a shared file system on a multi-node cluster).
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import os
import pickle
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from morph import __version__
from morph.errors import MorphError, OutputExistsError
from morph.io.atomic import remove_stale_parts
from morph.io.stack import CONVERT_HINT, microscope_format

PathLike = str | os.PathLike[str]

#: Suffixes recognised as image stacks by :func:`trace` (a ``.zarr`` folder included).
STACK_SUFFIXES = (".ome.tiff", ".ome.tif", ".ome.zarr", ".tiff", ".tif", ".lsm", ".zarr")
#: Header line prefix that stamps a traced SWC with its source (see :func:`trace`).
STAMP_PREFIX = "morph-batch:"
_CACHE_FORMAT = 1


# --------------------------------------------------------------------------------------------
# results and summary


@dataclass
class Failure:
    """One file that could not be processed."""

    file: str
    error: str
    traceback: str = ""


@dataclass
class BatchSummary:
    """What a batch run did.

    Attributes
    ----------
    total
        Number of input files.
    computed
        Files processed in this run.
    skipped
        Files already done and valid (from the cache or existing outputs).
    failures
        Files that failed (see :class:`Failure`).
    seconds
        Wall time of the run.
    task_seconds
        Sum over computed files of the time spent in the per-file function on the workers.
    log
        The failure log, when a file failed.
    output
        What was written (the table, or the output folder); ``None`` when nothing was.
    workers
        Dask workers of the cluster (0: in process).
    notes
        What a human should know beyond the counts (``"nothing written: ..."``).
    """

    total: int = 0
    computed: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    task_seconds: float = 0.0
    log: str | None = None
    output: str | None = None
    workers: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def ok(self) -> bool:
        return not self.failures

    def format(self) -> str:
        """A few lines for a human."""
        lines = [
            f"{self.total} files: {self.computed} processed, {self.skipped} already done, "
            f"{self.failed} failed ({self.seconds:.1f} s"
            + (f" on {self.workers} workers)" if self.workers else ", in process)")
        ]
        if self.output:
            lines.append(f"output: {self.output}")
        if self.failures:
            for f in self.failures[:10]:
                lines.append(f"  failed: {f.file}: {f.error}")
            if self.failed > 10:
                lines.append(f"  ... and {self.failed - 10} more")
            if self.log:
                lines.append(f"errors and tracebacks: {self.log}")
        lines.extend(self.notes)
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# inputs


def expand_paths(patterns: PathLike | Iterable[PathLike], *, suffixes: Sequence[str] | None = None) -> list[Path]:
    """Expand glob patterns (``**`` is recursive) and plain paths into a sorted list of files.

    An argument naming an existing file or folder is taken literally, even when its name holds
    glob characters (``cell[1].swc``); any other argument with ``*``, ``?`` or ``[`` is a
    pattern. A plain path that does not exist, or a pattern that matches nothing, is an error
    (a typo should not silently process nothing). Duplicate paths are removed (compared as absolute
    paths; symbolic links are distinct inputs). When ``suffixes`` is given,
    folders matched by a pattern are kept only if their name ends with one of them (``.zarr``
    stacks are folders).
    """
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    out: dict[str, Path] = {}
    for pat in patterns:
        s = os.fspath(pat)
        if os.path.exists(s):  # an existing file is taken as named, even with [ ] * ? in its name
            hits = [s]
        elif glob.has_magic(s):
            every = sorted(glob.glob(s, recursive=True))
            hits = [h for h in every if _is_input(Path(h), suffixes)]
            foreign = _foreign_images(every, hits) if suffixes is not None else ""
            if not hits:
                if foreign:
                    raise MorphError(f"no stack morph reads matches {s!r}, only {foreign}", hint=CONVERT_HINT)
                raise MorphError(f"no file matches {s!r}", hint="check the pattern (quote it so the shell does not expand it)")
            if foreign:
                from morph.progress import warn

                warn(f"{s!r} also matches {foreign}, which morph does not read: left out ({CONVERT_HINT})")
        else:
            raise MorphError("file not found", file=s, hint="check the path")
        for h in hits:
            p = Path(h)
            out.setdefault(os.path.abspath(p), p)
    return sorted(out.values(), key=lambda p: str(p))


def _foreign_images(every: list[str], kept: list[str]) -> str:
    """The microscope vendors' files among ``every`` not ``kept``, counted by format
    (``"3 Zeiss CZI files"``), or ``""``."""
    from collections import Counter

    left = set(every) - set(kept)
    n = Counter(f for h in left if Path(h).is_file() and (f := microscope_format(h)) is not None)
    return ", ".join(f"{k} {fmt} file{'s' * (k > 1)}" for fmt, k in sorted(n.items()))


def _is_input(p: Path, suffixes: Sequence[str] | None) -> bool:
    if p.is_file():
        return suffixes is None or p.name.lower().endswith(tuple(suffixes))
    if p.is_dir():
        return suffixes is not None and p.name.lower().endswith(tuple(s for s in suffixes if "zarr" in s))
    return False


def _source_stamp(path: Path) -> dict[str, Any]:
    st = path.stat()
    if path.is_dir():  # a zarr folder: use its metadata files' times and the total size
        size, mtime = 0, st.st_mtime_ns
        for f in path.rglob("*"):
            if f.is_file():
                s = f.stat()
                size += s.st_size
                mtime = max(mtime, s.st_mtime_ns)
        return {"source": os.path.abspath(path), "size": size, "mtime_ns": mtime}
    return {"source": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _func_name(func: Callable[..., Any]) -> str:
    if isinstance(func, functools.partial):
        kw = ",".join(f"{k}={v!r}" for k, v in sorted(func.keywords.items()))
        return f"{_func_name(func.func)}({kw})"
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def _options_key(func: Callable[..., Any], options: Mapping[str, Any]) -> str:
    text = json.dumps({"func": _func_name(func), "options": options}, sort_keys=True, default=repr)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _plain(v: Any) -> Any:
    """JSON-friendly Python value (numpy scalars and arrays converted)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


# --------------------------------------------------------------------------------------------
# the cluster


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


#: Dask settings of the :class:`~distributed.LocalCluster` that morph starts (an existing cluster
#: keeps its own configuration). Measured on 2 cores (``bench/batch.py``, docs/scaling.md):
#:
#: - the workers' statistical profiler samples the running task's stack every 10 ms (about 4%
#:   of a core per idle worker, more while a task runs): off;
#: - ``MALLOC_TRIM_THRESHOLD_=65536``, which Dask sets in each worker's environment to return
#:   freed memory to the system sooner, also switches off glibc's adaptive mmap threshold, so
#:   that every numpy array above 128 KiB is a fresh ``mmap`` with its pages zeroed on first
#:   touch: six times more page faults and up to 30% more CPU per cell for the features. Left
#:   unset (glibc's defaults);
#: - the event loops' health check every 20 ms and the system monitor every 500 ms cost the
#:   process that runs the scheduler and the nannies about 5% of a core: 1 s and 2 s.
LOCAL_CLUSTER_CONFIG: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}


#: ``scheduler`` values that run every file in the calling process, without Dask.
SERIAL = ("serial", "sync", "synchronous")
_SCHEDULER_HINT = (
    "accepted: 'serial' to run in this process, or the address of a running Dask scheduler: tcp://HOST:PORT, "
    "tls://HOST:PORT or HOST:PORT"
)


def check_scheduler(scheduler: str | None, workers: int | None = None) -> None:
    """Refuse a ``scheduler`` (or ``DASK_SCHEDULER_ADDRESS``) that is not ``"serial"`` or a
    Dask address, and a number of ``workers`` below 1, before any work is done.

    Parameters
    ----------
    scheduler
        As for :func:`dask_client`; ``None`` checks ``DASK_SCHEDULER_ADDRESS`` when set.
    workers
        Worker processes of the local cluster, if given.

    Raises
    ------
    MorphError
        Naming the value, what is wrong with it and the forms accepted. Whether a scheduler
        answers at the address is only known when connecting (see :func:`dask_client`).
    """
    if workers is not None and int(workers) < 1:
        raise MorphError(f"workers must be at least 1, got {workers}", hint="give --workers 1 or more")
    what = "scheduler"
    if scheduler is None:
        scheduler = os.environ.get("DASK_SCHEDULER_ADDRESS") or None
        what = "DASK_SCHEDULER_ADDRESS"
    if scheduler is None or scheduler in SERIAL:
        return
    text = str(scheduler).strip()
    why = ""
    try:
        from distributed.comm import registry
        from distributed.comm.addressing import parse_address
    except ModuleNotFoundError:  # pragma: no cover - depends on the installation
        raise MorphError("running on a Dask scheduler needs dask.distributed", hint="install it, or use 'serial'") from None
    try:
        protocol, location = parse_address(text)
        registry.get_backend(protocol)
    except (ValueError, TypeError) as e:
        why = str(e) or type(e).__name__
    else:
        if protocol in ("tcp", "tls"):
            host, sep, port = location.rpartition(":")
            if not sep:
                why = "no port number"
            elif not host.strip("[]"):
                why = "no host"
            elif not port.isdigit():
                why = f"the port {port!r} is not a number"
            elif not 0 < int(port) < 65536:
                why = f"the port {port} is out of range (1 to 65535)"
    if why:
        raise MorphError(f"bad {what} {text!r}: {why}", hint=_SCHEDULER_HINT)


@contextmanager
def dask_client(
    client: Any = None,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    memory_limit: str | int | float = "auto",
) -> Iterator[Any]:
    """The Dask client to run on; yields ``None`` for the in-process serial path.

    Precedence: ``client``; then ``scheduler`` (an address, or ``"serial"``); then the
    ``DASK_SCHEDULER_ADDRESS`` environment variable; otherwise a :class:`LocalCluster` of
    ``workers`` single-threaded processes (default: one per available core) with the machine's
    memory split between them (``memory_limit="auto"``), closed on exit; the tracer's filters
    in each use the cores per worker (``MORPH_THREADS``, unless set).
    """
    if client is not None:
        yield client
        return
    if scheduler is None:
        scheduler = os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    if scheduler in SERIAL:
        yield None
        return
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            c = Client(scheduler, timeout="30s")
        except OSError as e:
            raise MorphError(
                f"cannot reach the Dask scheduler at {scheduler} ({e})",
                hint="check the address (tcp://HOST:PORT) and that the scheduler is running",
            ) from e
        except ValueError as e:  # an address Dask cannot parse
            raise MorphError(f"bad scheduler {scheduler!r} ({e})", hint=_SCHEDULER_HINT) from e
        try:
            yield c
        finally:
            c.close()
        return
    n = int(workers) if workers else _cpu_count()
    if n < 1:
        raise MorphError(f"workers must be at least 1, got {n}")
    import dask

    with dask.config.set(LOCAL_CLUSTER_CONFIG):  # read by the scheduler and the nannies when built
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address=None,
            silence_logs=40,  # errors only
            # the tracer's filters share the cores left to each worker (morph.tracing.threads):
            # one thread each when there is a worker per core
            env={"MORPH_THREADS": os.environ.get("MORPH_THREADS") or str(max(1, _cpu_count() // n))},
        )
    c = Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _n_workers(client: Any) -> int:
    if client is None:
        return 0
    try:
        return len(client.scheduler_info(n_workers=-1)["workers"])
    except TypeError:  # older distributed: no n_workers argument
        return len(client.scheduler_info()["workers"])
    except Exception:  # pragma: no cover - informative only
        return 0


# --------------------------------------------------------------------------------------------
# the generic engine


def _failure(error: str, traceback_text: str = "", seconds: float = 0.0) -> dict[str, Any]:
    """The payload of a file that failed (what the summary and the error table read)."""
    return {"ok": False, "error": error, "traceback": traceback_text, "seconds": seconds}


def _guarded(func: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """Run ``func(*args)`` on a worker; never raises for an ordinary error."""
    t0 = time.perf_counter()
    try:
        value = func(*args)
    except Exception as e:  # recorded, the run goes on
        return _failure(_error_text(e), traceback.format_exc(), time.perf_counter() - t0)
    return {"ok": True, "value": value, "seconds": time.perf_counter() - t0}


def _error_text(e: BaseException) -> str:
    if isinstance(e, MorphError):
        return str(e)
    return f"{type(e).__name__}: {e}"


_LOG_MARK = "=== "


class _Log:
    """The failure log: opened (replacing the previous run's) on the first failure, one block
    per failed file. A run that completes with no failure removes the previous run's log (its
    failures were retried); a run that stops early leaves it."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fh: Any = None

    def write(self, f: Failure) -> None:
        if self.path is None:
            return
        if self._fh is None:
            self._fh = open(self.path, "w", encoding="utf-8")
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._fh.write(f"{_LOG_MARK}{stamp} FAILED {f.file}\n{f.error}\n{f.traceback.rstrip()}\n\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()

    def finish(self) -> None:
        """The run completed: a previous run's log with nothing new to say goes."""
        if self._fh is None and self.path is not None and self.path.is_file() and _is_batch_log(self.path):
            self.path.unlink()


def _is_batch_log(path: Path) -> bool:
    """Whether ``path`` is empty or a failure log written by :class:`_Log`."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
    except OSError:
        return False
    return not first or (first.startswith(_LOG_MARK) and " FAILED " in first)


def _check_log(path: Path, force: bool) -> None:
    """Refuse, before any work, a failure log that cannot be written (a folder, a missing or
    read-only folder), or an existing file that is not a previous run's log (unless ``force``)."""
    from morph.io.atomic import check_output

    try:
        check_output(path, force=True)
    except MorphError as e:
        raise MorphError(f"failure log: {e.message}", file=e.file or path, hint=e.hint) from None
    if path.is_file() and not force and not _is_batch_log(path):
        raise OutputExistsError(
            "log file exists and is not a failure log of morph batch", file=path,
            hint="give another --log, or use --force to replace it",
        )


def _guarded_many(func: Callable[..., Any], items: list[tuple[Any, ...]]) -> bytes:
    """Several files in one task (fewer, larger tasks: less scheduling cost per file).

    The payloads are returned pickled together, as one ``bytes``: objects they share (the
    feature names of compact rows, see :func:`_compact`) travel once per task, and Dask passes
    the bytes through without inspecting them.
    """
    return pickle.dumps([_guarded(func, *item) for item in items], protocol=pickle.HIGHEST_PROTOCOL)


def _unpack(result: Any) -> Any:
    return pickle.loads(result) if isinstance(result, bytes) else result


def _payload(fut: Any, result: Any) -> dict[str, Any]:
    """The task's payload, or a failure when the task itself erred (its worker died: the
    scheduler's ``KilledWorker``, or it was cancelled)."""
    if fut.status == "error" and isinstance(result, tuple) and len(result) == 3:
        _typ, exc, tb = result
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        return _failure(_error_text(exc), text)
    if isinstance(result, BaseException):
        text = "".join(traceback.format_exception(type(result), result, result.__traceback__))
        return _failure(_error_text(result), text)
    if not isinstance(result, dict) or "ok" not in result:  # pragma: no cover - defensive
        return _failure(f"unexpected task result {type(result).__name__}")
    return result


#: How long a run on a cluster waits with no worker at all (after it had some) before the items
#: still waiting are reported as failed: a local worker killed under load is sometimes not
#: restarted, and nothing would run them.
WORKERLESS_GRACE_S = 120.0


class _WorkerWatch:
    """Whether the cluster has had no worker for ``grace_s`` seconds, having had some; asks the
    scheduler at most once a second."""

    def __init__(self, client: Any, grace_s: float) -> None:
        self.client, self.grace_s = client, grace_s
        self.seen = False
        self.none_since: float | None = None
        self.asked = -np.inf

    def lost(self) -> bool:
        now = time.monotonic()
        if now - self.asked >= 1.0:
            self.asked = now
            try:
                n = len(self.client.nthreads())
            except Exception:  # the scheduler itself is gone: as good as no workers
                n = 0
            if n:
                self.seen, self.none_since = True, None
            elif self.none_since is None:
                self.none_since = now
        return self.seen and self.none_since is not None and now - self.none_since >= self.grace_s

    def failure(self) -> dict[str, Any]:
        return _failure(f"no Dask worker left to run it: all workers died and none came back within "
                        f"{self.grace_s:g} s (killed by the memory limit or the system?); run it again")


def _execute(
    func: Callable[..., Any],
    items: list[tuple[Any, ...]],
    client: Any,
    *,
    on_done: Callable[[int, dict[str, Any]], None],
    desc: str,
    total: int,
    initial: int,
    quiet: bool | None,
    per_task: int = 1,
) -> None:
    """Run ``_guarded(func, *item)`` for every item, in process or on ``client``.

    ``on_done(index, payload)`` is called in the calling process as each item completes (in
    completion order). On a cluster, ``per_task`` consecutive items make one task. The items
    of a task whose worker was lost (killed, out of memory) are run again at the end, each
    alone, one after the other, so that only an item that kills its worker by itself is
    reported as failed. On Ctrl-C the pending tasks are cancelled.
    """
    from tqdm import tqdm

    from morph import progress

    q = progress.QUIET if quiet is None else quiet
    counts = {"done": 0, "failed": 0}
    with tqdm(
        total=total, initial=initial, desc=desc, unit="file", disable=q, file=sys.stderr,
        dynamic_ncols=True, leave=False, smoothing=0.05,
    ) as bar:

        def finish(k: int, payload: dict[str, Any]) -> None:
            on_done(k, payload)
            counts["done" if payload["ok"] else "failed"] += 1
            left = total - initial - counts["done"] - counts["failed"]
            bar.set_postfix(done=initial + counts["done"], failed=counts["failed"], left=left, refresh=False)
            bar.update(1)

        if client is None:
            for k, item in enumerate(items):
                finish(k, _guarded(func, *item))
            return
        from distributed import as_completed

        if not items:
            return
        per_task = max(1, int(per_task))
        starts = list(range(0, len(items), per_task))
        futures = client.map(
            functools.partial(_guarded_many, func), [items[a : a + per_task] for a in starts], pure=False
        )
        span = {f.key: (a, min(per_task, len(items) - a)) for a, f in zip(starts, futures)}
        suspects: list[int] = []
        watch = _WorkerWatch(client, WORKERLESS_GRACE_S)

        def take(fut: Any) -> None:
            a, n = span.pop(fut.key)
            try:
                result = fut.result()
            except Exception as e:  # KilledWorker or a lost task
                result = e
            fut.release()
            result = _unpack(result)
            if isinstance(result, list):
                for j, payload in enumerate(result):
                    finish(a + j, payload)
            else:  # the worker died: Dask blames every task that was running on it
                suspects.extend(range(a, a + n))

        try:
            # completions are handed over in batches; each task's result (one pickled blob)
            # is fetched here, so a result lost with a worker that died after finishing it is
            # recomputed by the scheduler and waited for by this call
            ac = as_completed(futures, raise_errors=False)
            while not ac.is_empty():
                group = ac.next_batch(block=False)
                for fut in group:
                    take(fut)
                if group:
                    continue
                if watch.lost():  # what is still waiting would wait for ever
                    for fut in [f for f in futures if f.key in span]:
                        if fut.done():
                            take(fut)
                        else:
                            a, n = span.pop(fut.key)
                            for j in range(n):
                                finish(a + j, watch.failure())
                    break
                time.sleep(0.05)
            # run each item of a lost task again, alone on the cluster, one after the other:
            # only an item that kills its worker by itself is reported as failed
            for k in suspects:
                if watch.lost():
                    finish(k, watch.failure())
                    continue
                f1 = client.submit(_guarded_many, func, [items[k]], pure=False)
                futures.append(f1)
                while True:
                    try:
                        result = f1.result(timeout=1.0)
                    except TimeoutError:
                        if not watch.lost():
                            continue
                        finish(k, watch.failure())
                    except Exception as e:  # KilledWorker: the item itself kills its worker
                        finish(k, _payload(f1, e))
                    else:
                        finish(k, _unpack(result)[0])
                    break
                f1.release()
        finally:
            pending = [f for f in futures if not f.done()]
            if pending:
                client.cancel(pending)


# --------------------------------------------------------------------------------------------
# features


def _features_of(m: Any, *, compartments: Any = None, features: Any = None) -> dict[str, Any]:
    try:
        from morph import features as feat
    except ModuleNotFoundError as e:  # pragma: no cover - depends on the installation
        raise MorphError("morph.features is not available in this installation") from e
    return feat.compute(m, compartments=compartments, features=features)


def _features_task(
    func: Callable[[Any], Mapping[str, Any]], path: str, cache: tuple[str, dict[str, Any]] | None = None
) -> Any:
    """One file's features, measured where the task runs.

    ``cache`` is ``(cache_file, record_head)``: the result is written there (atomically) by
    the worker itself, so the process that started the run only collects compact results.
    Returns the result as :func:`_compact` makes it.
    """
    from morph.io import atomic_write_text, read_swc

    res = func(read_swc(path))
    values = {str(k): _plain(v) for k, v in dict(res).items()}
    if cache is not None:
        cache_file, head = cache
        atomic_write_text(cache_file, json.dumps({**head, "result": values}), force=True)
    return _compact(values)


_NAMES: dict[tuple[str, ...], tuple[str, ...]] = {}


def _names(names: tuple[str, ...]) -> tuple[str, ...]:
    """One shared tuple object per distinct list of feature names (pickled once per task)."""
    got = _NAMES.get(names)
    if got is None:
        if len(_NAMES) > 64:
            _NAMES.clear()
        got = _NAMES[names] = names
    return got


def _compact(values: Mapping[str, Any]) -> Any:
    """``(names, float64 array)`` when every value is a float (793 names and 6 KB of values
    for the default features, the names shared between the files of a task); otherwise the
    dict itself (a custom function returning integers, text...)."""
    if values and all(type(v) is float for v in values.values()):
        return (_names(tuple(values)), np.fromiter(values.values(), dtype=np.float64, count=len(values)))
    return dict(values)


def _as_dict(result: Any) -> dict[str, Any]:
    if isinstance(result, tuple):
        names, vals = result
        return dict(zip(names, vals.tolist()))
    return result


def _table(files: Sequence[Path], results: Sequence[Any]) -> Any:
    """The features table: a ``file`` column, then one column per feature, rows in path order.

    Rows that are all compact with the same names are stacked as one float64 matrix; otherwise
    the rows are dicts combined by pandas (columns in order of first appearance). Both give
    the same table for the same values.
    """
    import pandas as pd

    keep = [k for k, r in enumerate(results) if r is not None]
    if not keep:
        return pd.DataFrame({"file": pd.Series([], dtype=str)})
    rows = [results[k] for k in keep]
    names = rows[0][0] if isinstance(rows[0], tuple) else None
    if names is not None and all(isinstance(r, tuple) and (r[0] is names or r[0] == names) for r in rows):
        df = pd.DataFrame(np.vstack([r[1] for r in rows]), columns=list(names))
        df.insert(0, "file", [str(files[k]) for k in keep])
        return df
    return pd.DataFrame.from_records([{"file": str(files[k]), **_as_dict(results[k])} for k in keep])


def _cache_name(path: Path) -> str:
    h = hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:16]
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in path.stem)[:60]
    return f"{stem}.{h}.json"


def _read_cache(f: Path, stamp: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    try:
        rec = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        rec.get("format") != _CACHE_FORMAT
        or rec.get("morph_version") != __version__
        or rec.get("options_key") != key
        or any(rec.get(k) != v for k, v in stamp.items())
        or not isinstance(rec.get("result"), dict)
    ):
        return None
    return _compact(rec["result"])


def _write_table(df: Any, path: Path, force: bool) -> None:
    from morph.io import atomic_path

    suffix = path.suffix.lower()
    plain = df.copy()
    plain.attrs = {}
    with atomic_path(path, force=force) as tmp:
        if suffix == ".parquet":
            plain.to_parquet(tmp, index=False)
        elif suffix in (".csv", ".tsv"):
            plain.to_csv(tmp, index=False, sep="\t" if suffix == ".tsv" else ",")
        else:  # pragma: no cover - checked before the run
            raise MorphError(f"unknown table format {suffix!r}", file=path)


def _check_table_path(output: Path) -> None:
    """Refuse, before any work, a table that cannot be written: an unknown format, a folder,
    a missing or read-only folder, a cache folder name taken by a file."""
    from morph.io.atomic import check_output

    if output.suffix.lower() not in (".parquet", ".csv", ".tsv"):
        raise MorphError(
            f"unknown table format {output.suffix!r}", file=output, hint="name the output .parquet, .csv or .tsv"
        )
    check_output(output, force=True)  # whether it may be replaced is decided by _check_table_reuse


def _table_files(path: Path) -> list[str] | None:
    """The ``file`` column of an existing batch table, or ``None`` when it has none (or cannot
    be read): then it is not a table written by :func:`features`."""
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            col = pd.read_parquet(path, columns=["file"])["file"]
        else:
            col = pd.read_csv(path, usecols=["file"], dtype=str, sep="\t" if suffix == ".tsv" else ",")["file"]
    except Exception:  # any unreadable file or missing column: not ours
        return None
    return [str(f) for f in col.dropna()]


def _check_table_reuse(output: Path, inputs: Sequence[Path], cache_dir: Path | None, force: bool) -> None:
    """Refuse to replace an existing table, unless ``force``, when it is not from a previous
    run of the same batch: it has no cache folder, or it is not a batch table, or it holds
    rows of files that this run does not include (they would be lost)."""
    if force or not output.exists():
        return
    hint = "use --force to replace it, or give another output name"
    if cache_dir is None or not cache_dir.is_dir():
        raise OutputExistsError("output exists", file=output, hint="use --force to overwrite it")
    listed = _table_files(output)
    if listed is None:
        raise OutputExistsError("output exists and is not a table written by morph batch (no 'file' column)",
                                file=output, hint=hint)
    ours = {str(f) for f in inputs} | {os.path.abspath(f) for f in inputs}
    gone = [f for f in listed if f not in ours and os.path.abspath(f) not in ours]
    if gone:
        more = f" and {len(gone) - 1} more" if len(gone) > 1 else ""
        raise OutputExistsError(
            f"output exists with rows of {len(gone)} file(s) that this run does not include ({gone[0]}{more}): "
            "replacing it would lose them", file=output,
            hint="give the files of the run that wrote it, or more; or another output name; or --force to replace it",
        )


def _check_cache_dir(cache_dir: Path) -> None:
    if cache_dir.exists() and not cache_dir.is_dir():
        raise MorphError("the cache folder's name is taken by a file", file=cache_dir,
                         hint="move that file away, or give another output name")


def _make_dir(folder: Path, what: str) -> bool:
    """Create ``folder`` (and its parents) and check that files can be written in it; returns
    whether it was created. A clear :class:`MorphError` instead of the system's."""
    from morph.io.atomic import check_writable_folder

    existed = folder.is_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        check_writable_folder(folder, what=what)
    except (OSError, MorphError) as e:
        if not existed:
            _remove_if_empty(folder, True)
        if isinstance(e, MorphError):  # the probe's, worded for ``what`` already
            raise
        reason = (e.strerror or type(e).__name__).lower()
        raise MorphError(f"cannot write the {what}: {reason}", file=folder,
                         hint="choose a folder you can write to") from None
    return not existed


def _remove_if_empty(folder: Path | None, created: bool) -> None:
    """Remove ``folder`` when this run created it and nothing was written there."""
    if folder is None or not created:
        return
    try:
        folder.rmdir()  # only an empty folder
    except OSError:
        pass


def features(
    paths: PathLike | Iterable[PathLike],
    client: Any = None,
    *,
    compartments: Any = None,
    features: Any = None,
    output: PathLike | None = None,
    redo: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    log: PathLike | None = None,
    func: Callable[[Any], Mapping[str, Any]] | None = None,
    cache: PathLike | bool | None = None,
    force: bool = False,
    files_per_task: int | None = None,
    quiet: bool | None = None,
) -> Any:
    """Features of many reconstructions, one row per file.

    Parameters
    ----------
    paths
        SWC files, or glob patterns (``'cells/**/*.swc'``; ``**`` is recursive).
    client
        A ``dask.distributed.Client`` to run on (see :func:`dask_client` for the default).
    compartments, features
        Passed to :func:`morph.features.compute`.
    output
        Table to write (``.parquet``, ``.csv`` or ``.tsv``), atomically; nothing is written
        when no file could be measured. An existing table is replaced only with ``force``, or
        when it was written by a previous run of the same batch (its cache folder exists) and
        holds no row of a file this run leaves out.
    redo
        Recompute every file, ignoring cached results.
    workers
        Worker processes of the local cluster (default: one per core).
    scheduler
        ``tcp://HOST:PORT`` of an existing Dask scheduler, or ``"serial"`` to run in process.
    log
        Failure log (default: ``<output>.log`` when there is an output). It replaces the
        previous run's log; an existing file that is not a failure log is replaced only with
        ``force``.
    func
        Per-file function ``func(morphology) -> {name: scalar}`` replacing
        :func:`morph.features.compute` (it must be importable or picklable by the workers).
    cache
        Folder of per-file results (default: ``<output>.cache`` next to the output; none when
        there is no output). ``False`` disables it.
    force
        Replace an existing output (or log) that is not from a previous run of this batch.
    files_per_task
        Files measured by one Dask task (default: about 16 tasks per worker, at most 16
        files per task; each task costs the scheduler a few milliseconds). Each file is
        still measured, cached and reported on its own.

    Returns
    -------
    pandas.DataFrame
        A ``file`` column then one column per feature, rows in path order, failed files left
        out. ``df.attrs["summary"]`` is the :class:`BatchSummary` (failures included).

    Raises
    ------
    MorphError
        Before any work, for a bad option (unknown ``features`` or ``compartments``, a
        ``scheduler`` that is not an address) or an output that cannot be written;
        :class:`~morph.errors.OutputExistsError` for a table or log that must not be replaced.
    """

    t0 = time.perf_counter()
    # every option and output is checked before any work is done or anything is written
    if client is None:
        check_scheduler(scheduler, workers)
    files = expand_paths(paths)
    if func is None:
        from morph.features import _check, _check_compartments  # the checks of `morph features`

        _check(features, {})
        _check_compartments(compartments)
        func = functools.partial(_features_of, compartments=compartments, features=features)
    out_path = Path(output) if output is not None else None
    if out_path is not None:
        _check_table_path(out_path)
    if cache is None or cache is True:
        cache_dir = None if out_path is None else out_path.with_name(out_path.name + ".cache")
    elif cache is False:
        cache_dir = None
    else:
        cache_dir = Path(cache)
    if cache_dir is not None:
        _check_cache_dir(cache_dir)
    if out_path is not None:
        _check_table_reuse(out_path, files, cache_dir, force)
    log_path = Path(log) if log is not None else (out_path.with_name(out_path.name + ".log") if out_path else None)
    if log_path is not None:
        _check_log(log_path, force)
    made_cache = False
    if cache_dir is not None:
        made_cache = _make_dir(cache_dir, "cache folder")
        remove_stale_parts(cache_dir)  # the temporary files of a killed run

    key = _options_key(func, {"compartments": compartments, "features": features})
    results: list[dict[str, Any] | None] = [None] * len(files)
    stamps = [_source_stamp(f) for f in files]
    todo: list[int] = []
    for k, f in enumerate(files):
        if cache_dir is not None and not redo:
            r = _read_cache(cache_dir / _cache_name(f), stamps[k], key)
            if r is not None:
                results[k] = r
                continue
        todo.append(k)

    summary = BatchSummary(total=len(files), skipped=len(files) - len(todo))
    flog = _Log(log_path)

    def on_done(j: int, payload: dict[str, Any]) -> None:
        k = todo[j]
        if payload["ok"]:  # the worker has written the cache entry
            results[k] = payload["value"]
            summary.computed += 1
            summary.task_seconds += payload["seconds"]
        else:
            fail = Failure(str(files[k]), payload["error"], payload.get("traceback", ""))
            summary.failures.append(fail)
            flog.write(fail)

    try:
        with dask_client(client, scheduler=scheduler, workers=workers) as c:
            summary.workers = _n_workers(c)
            if files_per_task is None:  # about 16 tasks per worker, at most 16 files each
                files_per_task = int(np.clip(len(todo) // max(1, 16 * summary.workers), 1, 16))
            head = {"format": _CACHE_FORMAT, "morph_version": __version__, "options_key": key}
            _execute(
                _features_task,
                [
                    (func, str(files[k]),
                     None if cache_dir is None else (str(cache_dir / _cache_name(files[k])), {**head, **stamps[k]}))
                    for k in todo
                ],
                c,
                on_done=on_done,
                desc="features",
                total=len(files),
                initial=summary.skipped,
                quiet=quiet,
                per_task=files_per_task,
            )
    finally:
        flog.close()
        _remove_if_empty(cache_dir, made_cache)  # nothing computed: no cache folder left behind
    flog.finish()
    summary.failures.sort(key=lambda f: f.file)
    df = _table(files, results)
    if out_path is not None:
        if len(df):
            _write_table(df, out_path, force=True)
            summary.output = str(out_path)
        else:
            kept = f" ({out_path} is left as it was)" if out_path.exists() else ""
            summary.notes.append(f"no file could be measured: nothing written{kept}")
    summary.log = str(log_path) if (log_path is not None and summary.failures) else None
    summary.seconds = time.perf_counter() - t0
    df.attrs["summary"] = summary
    return df


# --------------------------------------------------------------------------------------------
# tracing


def _strip_stack_suffix(name: str) -> str:
    low = name.lower()
    for s in STACK_SUFFIXES:
        if low.endswith(s):
            return name[: -len(s)]
    return Path(name).stem


def output_paths(files: Sequence[Path], outdir: Path) -> list[Path]:
    """Where each stack's SWC goes: the stack's path relative to the inputs' common folder,
    below ``outdir``, with the suffix replaced by ``.swc`` (so equal names in different
    folders do not collide).

    Stacks of one folder whose names differ only by their suffix (``a.tif`` and ``a.tiff``,
    ``a.tif`` and ``a.ome.zarr``; letter case ignored) keep their whole name instead:
    ``a.tif.swc`` and ``a.tiff.swc``. Inputs that would still share an output are refused.

    Raises
    ------
    MorphError
        Listing the inputs that would write the same SWC.
    """
    if not files:
        return []
    parents = [os.path.dirname(os.path.abspath(f)) for f in files]
    root = Path(os.path.commonpath(parents))
    rels = [Path(p).relative_to(root) for p in parents]
    plain = [rel / (_strip_stack_suffix(f.name) + ".swc") for rel, f in zip(rels, files)]
    seen: dict[str, int] = {}
    for q in plain:
        seen[str(q).casefold()] = seen.get(str(q).casefold(), 0) + 1
    out = [outdir / (rel / (f.name + ".swc") if seen[str(q).casefold()] > 1 else q)
           for rel, f, q in zip(rels, files, plain)]
    clash: dict[Path, list[Path]] = {}
    for f, o in zip(files, out):
        clash.setdefault(o, []).append(f)
    bad = [(o, fs) for o, fs in clash.items() if len(fs) > 1]
    if bad:
        o, fs = bad[0]
        more = f" (and {len(bad) - 1} more outputs)" if len(bad) > 1 else ""
        raise MorphError(
            f"{len(fs)} stacks would be traced to the same file {o}: {', '.join(map(str, fs))}{more}",
            hint="rename the stacks, or trace them in separate runs into separate folders",
        )
    return out


def _refuse_reconstructions(files: Sequence[Path]) -> None:
    """Refuse SWC files given to :func:`trace`: they are reconstructions, not stacks."""
    swc = [f for f in files if f.suffix.lower() == ".swc" and f.is_file()]
    if swc:
        more = f" (and {len(swc) - 1} more .swc files)" if len(swc) > 1 else ""
        raise MorphError(
            f"is a reconstruction (SWC), not an image stack{more}", file=swc[0],
            hint="batch trace traces image stacks (TIFF, folders of slices, OME-Zarr); to measure "
            "reconstructions use `morph batch features`",
        )


def load_stack(path: PathLike, *, voxel_size: Sequence[float] | None = None, channel: int | str | None = None,
               series: int | None = None) -> Any:
    """A :class:`morph.io.Stack` from a TIFF (or folder of slices) or a (OME-)Zarr store
    (``channel``: see :func:`morph.io.read_stack`)."""
    from morph.io import read_stack

    return read_stack(path, voxel_size=voxel_size, channel=channel, series=series)  # zarr stores included


def _trace_params(params: Any) -> Any:
    from morph.tracing import TraceParams

    if params is None or isinstance(params, TraceParams):
        return params
    import dataclasses
    import difflib

    given = dict(params)
    known = [f.name for f in dataclasses.fields(TraceParams)]
    bad = [k for k in given if k not in known]
    if bad:
        close = [m for k in bad for m in difflib.get_close_matches(str(k), known, n=1)]
        also = f" (did you mean {', '.join(close)}?)" if close else ""
        raise MorphError(f"unknown tracing parameter {', '.join(map(repr, bad))}{also}",
                         hint="the parameters are listed in docs/tracing.md")
    try:
        return TraceParams().replace(**given)
    except (TypeError, ValueError) as e:
        raise MorphError(f"bad tracing parameter ({e})", hint="see the fields of morph.tracing.TraceParams") from e


POINT_KINDS = ("soma", "axon", "seed")


def read_points_table(path: PathLike, files: Sequence[Path]) -> dict[int, dict[str, Any]]:
    """Per-stack clicks for :func:`trace`, from a table with one point per row.

    Columns (named in a header line; comma- or tab-separated; case ignored): ``stack``, the
    stack's file (or folder) name, or its path (absolute, or relative to the table's folder)
    when names repeat; ``kind``, one of ``soma``, ``axon``, ``seed``; and ``x``, ``y``, ``z``.
    A stack takes at most one soma and one axon point, and any number of seeds; stacks with
    no row are traced automatically.

    Returns ``{index in files: {"soma": [x, y, z], "axon": [...], "seeds": [[...], ...]}}``,
    in the table's units. Every problem (a missing column, a stack not in the batch, an
    unknown kind, a second soma...) is a :class:`MorphError` naming the line.
    """
    import pandas as pd

    p = Path(path)
    hint = "one point per row: columns stack, kind (soma, axon or seed), x, y, z"
    if not p.is_file():
        raise MorphError("points table not found", file=p, hint=hint)
    try:
        table = pd.read_csv(p, sep=None, engine="python", dtype=str, comment="#", skipinitialspace=True,
                            encoding="utf-8-sig")  # a byte-order mark (Excel's "CSV UTF-8") is not a column name
    except (ValueError, pd.errors.ParserError) as e:
        raise MorphError(f"cannot read the points table ({e})", file=p, hint=hint) from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in ("stack", "kind", "x", "y", "z") if c not in table.columns]
    if missing:
        raise MorphError(f"the header line names no column {', '.join(missing)}", file=p, line=1, hint=hint)
    by_path = {f.resolve(): k for k, f in enumerate(files)}
    by_name: dict[str, list[int]] = {}
    for k, f in enumerate(files):
        by_name.setdefault(f.name, []).append(k)
    out: dict[int, dict[str, Any]] = {}
    for row, rec in enumerate(table.itertuples(index=False), start=2):
        name = str(rec.stack).strip()
        given = Path(name)
        k = next((by_path[q.resolve()] for q in (given, p.parent / given) if q.resolve() in by_path), None)
        if k is None:
            hits = by_name.get(given.name, []) if len(given.parts) == 1 else []
            if len(hits) > 1:
                raise MorphError(f"stack {name!r} names {len(hits)} stacks of this batch", file=p, line=row,
                                 hint="give its path (absolute, or relative to the table's folder)")
            if not hits:
                raise MorphError(f"stack {name!r} is none of the {len(files)} stacks of this batch", file=p,
                                 line=row, hint="check the name against the stacks the patterns match")
            k = hits[0]
        kind = str(rec.kind).strip().lower()
        if kind not in POINT_KINDS:
            raise MorphError(f"unknown kind {rec.kind!r}", file=p, line=row, hint="kind is soma, axon or seed")
        try:
            xyz = [float(v) for v in (rec.x, rec.y, rec.z)]
        except (TypeError, ValueError):
            raise MorphError(f"x, y, z must be numbers, got {rec.x!r}, {rec.y!r}, {rec.z!r}", file=p, line=row,
                             hint=hint) from None
        if not all(np.isfinite(xyz)):
            raise MorphError(f"x, y, z must be finite, got {xyz}", file=p, line=row, hint=hint)
        entry = out.setdefault(k, {})
        if kind == "seed":
            entry.setdefault("seeds", []).append(xyz)
        elif kind in entry:
            raise MorphError(f"a second {kind} point for {files[k].name}", file=p, line=row,
                             hint=f"give one {kind} point per stack (seeds may be many)")
        else:
            entry[kind] = xyz
    return out


def _points_in_um(options: dict[str, Any], units: str, voxel_size: Sequence[float]) -> dict[str, Any]:
    """``options`` with the soma, axon and seeds given in voxels (``units == "voxel"``)
    multiplied by the stack's voxel size."""
    if units != "voxel":
        return options
    vs = np.asarray(voxel_size, dtype=np.float64)
    out = dict(options)
    for key in ("soma", "axon", "seeds"):
        if out.get(key) is not None:
            out[key] = (np.asarray(out[key], dtype=np.float64) * vs).tolist()
    return out


def _memory_budget() -> int | None:
    """What a tracing task may take: the memory available (:func:`morph.tracing.memory.available_memory`),
    bounded by the limit of the Dask worker it runs in (several workers share the machine)."""
    from morph.tracing.memory import available_memory

    found = [available_memory()]
    try:
        from distributed import get_worker

        found.append(get_worker().memory_manager.memory_limit)
    except (ImportError, ValueError, AttributeError):  # not in a worker
        pass
    known = [int(v) for v in found if v]
    return min(known) if known else None


def _planned_bound(src: str, *, voxel_size: Any = None, channel: int | str | None = None,
                   series: int | None = None) -> tuple[Any, int] | None:
    """The stack opened lazily and the bound to trace it under chunk by chunk when it would
    not fit in the task's memory (:func:`_memory_budget`,
    :func:`morph.tracing.memory.plan_stack`), with a warning saying so; ``None`` when it fits."""
    import warnings

    from morph.tracing.memory import plan_stack

    budget = _memory_budget()
    plan = None if budget is None else plan_stack(src, voxel_size=voxel_size, channel=channel, series=series,
                                                  available=budget)
    if plan is None:
        return None
    lazy, need, available, bound = plan
    gib = float(1 << 30)
    warnings.warn(f"traced chunk by chunk under {bound / gib:.1f} GiB: in memory it would take about "
                  f"{need / gib:.1f} GiB, more than the {available / gib:.1f} GiB this task has", stacklevel=2)
    return lazy, bound


def _trace_of(
    src: str, *, voxel_size: Any = None, channel: int | str | None = None, series: int | None = None,
    max_memory: int | None = None, params: Any = None, strict_memory: bool = False, point_units: str = "um",
    **options: Any
) -> Any:
    """morph's tracer on the stack at ``src``: in memory, or chunk by chunk under ``max_memory``
    (``strict_memory``: fail the stack when its tree stages would exceed the bound, see
    :func:`morph.tracing.chunked.check_tree_memory`)."""
    try:
        from morph.tracing import trace as tracer
    except ModuleNotFoundError as e:  # pragma: no cover - depends on the installation
        raise MorphError("morph.tracing is not available in this installation") from e
    params = _trace_params(params)
    planned = None if max_memory else _planned_bound(src, voxel_size=voxel_size, channel=channel, series=series)
    if planned is not None:
        st, max_memory = planned
    elif max_memory:
        from morph.io.chunked import open_chunked

        st = open_chunked(src, voxel_size=voxel_size, channel=channel, series=series)
    if max_memory:
        from morph.tracing.chunked import trace as chunked_trace

        return chunked_trace(st, max_memory=int(max_memory), params=params, progress=False,
                             strict_memory=strict_memory, **_points_in_um(options, point_units, st.voxel_size))
    st = load_stack(src, voxel_size=voxel_size, channel=channel, series=series)
    return tracer(st, params=params, progress=False, **_points_in_um(options, point_units, st.voxel_size))


def _trace_task(
    func: Callable[..., Any] | None, src: str, dst: str, options: dict[str, Any], stamp_line: str,
    read: tuple[Any, int | str | None, int | None]
) -> dict[str, Any]:
    import warnings

    from morph.io import write_swc

    voxel_size, channel, series = read
    with warnings.catch_warnings(record=True) as caught:  # reported per stack, not as Python's lines
        warnings.simplefilter("always")
        if func is None:
            m = _trace_of(src, voxel_size=voxel_size, channel=channel, series=series, **options)
        else:
            options = dict(options)
            units = options.pop("point_units", "um")
            st = load_stack(src, voxel_size=voxel_size, channel=channel, series=series)
            m = func(st, **_points_in_um(options, units, st.voxel_size))
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    write_swc(m, dst, force=True, extra_header=[stamp_line])
    said = list(dict.fromkeys(str(w.message) for w in caught))
    return {"nodes": int(len(m)), "total_length": float(m.total_length()), "warnings": "; ".join(said)}


def _stamp_line(stamp: Mapping[str, Any], key: str) -> str:
    rec = {"morph_version": __version__, "options_key": key, **stamp}
    return STAMP_PREFIX + " " + json.dumps(rec, sort_keys=True)


def _stamp_valid(dst: Path, line: str) -> bool:
    """True when ``dst`` is a complete SWC written for exactly this source and options."""
    try:
        with open(dst, encoding="utf-8", errors="replace") as fh:
            for _ in range(200):
                s = fh.readline()
                if not s:
                    return False
                s = s.strip()
                if not s.startswith("#"):
                    return False
                if s[1:].strip() == line:
                    return True
    except OSError:
        return False
    return False


def trace(
    paths: PathLike | Iterable[PathLike],
    outdir: PathLike,
    client: Any = None,
    *,
    redo: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    log: PathLike | None = None,
    voxel_size: Sequence[float] | None = None,
    channel: int | str | None = None,
    series: int | None = None,
    features_output: PathLike | None = None,
    func: Callable[..., Any] | None = None,
    features_func: Callable[[Any], Mapping[str, Any]] | None = None,
    force: bool = False,
    quiet: bool | None = None,
    points: PathLike | None = None,
    units: str = "um",
    **trace_options: Any,
) -> Any:
    """Trace many stacks, one SWC per stack in ``outdir``.

    Parameters
    ----------
    paths
        Stacks (TIFF, folders of slices, ``.zarr``/OME-Zarr), or glob patterns.
    outdir
        Output folder (created). Each stack's SWC keeps the stack's relative path (see
        :func:`output_paths`), and carries a ``# morph-batch: {...}`` header line stamping its
        source's size and modification time, the morph version and the options: an output
        whose stamp matches is skipped on a re-run (``redo=True`` retraces it).
    client, workers, scheduler
        Where to run (see :func:`dask_client`).
    log
        Failure log (default: ``outdir/morph-batch-trace.log``).
    voxel_size
        ``(x, y, z)`` micrometres overriding the stacks' metadata.
    channel
        For multi-channel or RGB stacks: the channel to trace, or ``"mean"`` (see
        :func:`morph.io.read_stack`).
    series
        For TIFFs holding several image series: the one to trace (0-based; default the
        first).
    features_output
        When given, the features of the traced cells are then computed on the same cluster
        and written to this table (see :func:`features`).
    func
        Per-stack function ``func(stack, **trace_options) -> Morphology`` replacing
        :func:`morph.tracing.trace`.
    features_func
        Per-file function for ``features_output`` (see :func:`features`).
    force
        Replace an existing ``features_output`` (or log) that is not from a previous run of
        this batch, or that holds rows of stacks this run leaves out.
    points
        A table of clicks per stack (:func:`read_points_table`: columns ``stack``, ``kind``
        (``soma``, ``axon`` or ``seed``), ``x``, ``y``, ``z``), passed to the tracer as
        ``soma``, ``axon`` and ``seeds``; a stack's clicks are part of its stamp, so a changed
        click retraces it and an unchanged one is skipped.
    units
        Of the table's points: ``"um"`` (micrometres) or ``"voxel"`` (x = column, y = row, z =
        slice, from 0; multiplied by each stack's voxel size).
    **trace_options
        Passed to the tracing function. For morph's tracer: ``params`` (a
        :class:`~morph.tracing.TraceParams` or a dict of its fields), ``max_memory`` (bytes:
        trace chunk by chunk with :func:`morph.tracing.chunked.trace`), ``strict_memory``
        (with ``max_memory``: fail a stack whose tree stages would exceed the bound instead of
        warning), ``axon``, ``roi``...

    Returns
    -------
    pandas.DataFrame
        One row per stack: ``file``, ``output``, ``status`` (``traced``, ``done`` (skipped) or
        ``failed``), ``error``, ``warnings`` (what the tracer warned of, such as an assumed voxel
        size; also printed, one line per stack), ``nodes``, ``total_length``, ``seconds``.
        ``df.attrs["summary"]`` is the :class:`BatchSummary`; ``df.attrs["features"]`` the
        features table when ``features_output`` was given.

    Raises
    ------
    MorphError
        Before any work, for a bad option (unknown tracing parameter, ``scheduler``,
        ``units``, a points table), an ``.swc`` input (a reconstruction, not a stack), stacks
        that would share an output (see :func:`output_paths`), or an output that cannot be
        written; :class:`~morph.errors.OutputExistsError` for a ``features_output`` or log
        that must not be replaced.
    """
    import pandas as pd

    t0 = time.perf_counter()
    # every option and output is checked before any work is done or anything is written
    if units not in ("um", "voxel"):
        raise MorphError(f"units must be 'um' or 'voxel', got {units!r}")
    if client is None:
        check_scheduler(scheduler, workers)
    if func is None and "params" in trace_options:
        _trace_params(trace_options["params"])  # unknown parameter names: fail before starting
    files = expand_paths(paths, suffixes=STACK_SUFFIXES)
    _refuse_reconstructions(files)
    clicks = read_points_table(points, files) if points is not None else {}
    out_root = Path(outdir)
    if out_root.exists() and not out_root.is_dir():
        raise MorphError("output must be a folder", file=out_root, hint="give a folder name for the traced SWCs")
    dsts = output_paths(files, out_root)

    def in_new_root(p: Path) -> bool:  # a file to go straight into the output folder, still to be made
        return not out_root.exists() and os.path.abspath(p.parent) == os.path.abspath(out_root)

    later: list[Callable[[], None]] = []  # the checks of files in that folder, once it is made
    if features_output is not None:
        fo = Path(features_output)
        fo_cache, fo_log = fo.with_name(fo.name + ".cache"), fo.with_name(fo.name + ".log")
        if in_new_root(fo):
            if fo.suffix.lower() not in (".parquet", ".csv", ".tsv"):
                _check_table_path(fo)  # the format's message
            later.append(functools.partial(_check_table_path, fo))
        else:
            _check_table_path(fo)
            _check_cache_dir(fo_cache)
            _check_table_reuse(fo, dsts, fo_cache, force)
            _check_log(fo_log, force)
    log_path = Path(log) if log is not None else out_root / "morph-batch-trace.log"
    if in_new_root(log_path):
        later.append(functools.partial(_check_log, log_path, force))
    else:
        _check_log(log_path, force)
    made_root = _make_dir(out_root, "output folder")
    try:
        for check in later:
            check()
    except MorphError:
        _remove_if_empty(out_root, made_root)
        raise
    remove_stale_parts(out_root)  # the temporary files of a killed run
    vs = None if voxel_size is None else tuple(float(v) for v in voxel_size)
    reading: dict[str, Any] = {"voxel_size": vs}  # the channel and series only when given: earlier stamps hold
    if channel is not None:
        reading["channel"] = channel
    if series is not None:
        reading["series"] = series
    # each stack's options: the common ones, and its clicks (with their units) when it has any
    stack_options = [dict(trace_options, **clicks[k], point_units=units) if k in clicks else dict(trace_options)
                     for k in range(len(files))]
    keys = [_options_key(func or _trace_of, {**reading, **o}) for o in stack_options]

    rows: list[dict[str, Any]] = [
        {"file": str(f), "output": str(d), "status": "", "error": "", "warnings": "", "nodes": np.nan,
         "total_length": np.nan, "seconds": np.nan}
        for f, d in zip(files, dsts)
    ]
    lines = [_stamp_line(_source_stamp(f), keys[k]) for k, f in enumerate(files)]
    todo = []
    for k, d in enumerate(dsts):
        if not redo and _stamp_valid(d, lines[k]):
            rows[k]["status"] = "done"
        else:
            todo.append(k)
    summary = BatchSummary(total=len(files), skipped=len(files) - len(todo), output=str(out_root))
    flog = _Log(log_path)

    def on_done(j: int, payload: dict[str, Any]) -> None:
        k = todo[j]
        rows[k]["seconds"] = payload["seconds"]
        if payload["ok"]:
            rows[k].update(status="traced", **payload["value"])
            if rows[k]["warnings"]:
                from morph.progress import warn

                warn(f"{files[k]}: {rows[k]['warnings']}")
            summary.computed += 1
            summary.task_seconds += payload["seconds"]
        else:
            rows[k].update(status="failed", error=payload["error"])
            fail = Failure(str(files[k]), payload["error"], payload.get("traceback", ""))
            summary.failures.append(fail)
            flog.write(fail)

    feats = None
    try:
        with dask_client(client, scheduler=scheduler, workers=workers) as c:
            summary.workers = _n_workers(c)
            _execute(
                _trace_task,
                [(func, str(files[k]), str(dsts[k]), stack_options[k], lines[k], (vs, channel, series))
                 for k in todo],
                c,
                on_done=on_done,
                desc="trace",
                total=len(files),
                initial=summary.skipped,
                quiet=quiet,
            )
            if features_output is not None:
                done = [Path(r["output"]) for r in rows if r["status"] in ("traced", "done")]
                if done:  # the table was checked against every output above: it may be replaced
                    feats = features(
                        done, c, output=features_output, redo=redo, func=features_func,
                        scheduler="serial" if c is None else None, quiet=quiet, force=True,
                    )
    finally:
        flog.close()
        _remove_if_empty(out_root, made_root)  # nothing written: no empty folder left behind
    flog.finish()
    if not any(r["status"] in ("traced", "done") for r in rows):
        summary.notes.append("no stack could be traced: nothing written")
    if not out_root.is_dir():
        summary.output = None
    summary.failures.sort(key=lambda f: f.file)
    summary.log = str(log_path) if summary.failures else None
    summary.seconds = time.perf_counter() - t0
    df = pd.DataFrame.from_records(rows, columns=["file", "output", "status", "error", "warnings", "nodes", "total_length", "seconds"])
    df.attrs["summary"] = summary
    if feats is not None:
        df.attrs["features"] = feats
        fs = feats.attrs["summary"]
        summary.notes.extend(f"features: {n}" for n in fs.notes)
        for f in fs.failures:
            summary.failures.append(Failure(f.file, "features: " + f.error, f.traceback))
    return df


def load_function(spec: str) -> Callable[..., Any]:
    """The function named ``"package.module:function"`` (for the CLI's ``--func``)."""
    import importlib

    mod_name, sep, name = spec.partition(":")
    if not sep or not mod_name or not name:
        raise MorphError(f"bad function name {spec!r}", hint="write it as package.module:function")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise MorphError(f"cannot import {mod_name!r} ({e})", hint="is the module on PYTHONPATH of every worker?") from e
    obj: Any = mod
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise MorphError(f"{mod_name!r} has no {name!r}", hint="check the function name")
    if not callable(obj):
        raise MorphError(f"{spec!r} is not a function")
    return obj
