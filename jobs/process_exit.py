"""How the ``tracelake`` command ends its process: after every exit handler, without CPython's teardown.

Reading a Delta table through delta-rs hands Arrow Python-backed file objects; Arrow's I/O threads
release the buffers of finished reads a moment after the reader got its data, and releasing one
takes the GIL. When a short command (``tracelake impact … --json`` answers in under a second on an
object store) reaches interpreter finalisation inside that moment, CPython 3.11 ends the Arrow
thread with ``pthread_exit``, whose unwinding through C++ code calls ``std::terminate``: the
process prints ``terminate called without an active exception`` and dies with SIGABRT (exit 134)
after its answer was already written - 5-10 % of runs against SeaweedFS, seen in the cluster suite
(core dump: ``arrow::py::PyBuffer::~PyBuffer`` -> ``PyGILState_Ensure`` -> ``PyThread_exit_thread``
on an ``arrow::internal::ThreadPool`` worker while the main thread is in ``Py_FinalizeEx``).

Every exit handler still runs (Spark's gateway shutdown, MLflow, OpenLineage delivery, non-daemon
threads are joined before any of them); only the last step - freeing modules and running C++
static destructors, where the race is - is skipped by ending with ``os._exit`` once the streams
and logging are flushed. Only the command-line entry point does this; ``main()`` called in-process
(tests, embedding) returns normally.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn

__all__ = ["exit_after_handlers"]


def exit_after_handlers(command: Callable[[], int]) -> NoReturn:
    """Run ``command`` and exit with its code once every other exit handler has run."""
    outcome = {"code": 1}   # an exception escaping ``command`` exits 1, as Python would

    def leave() -> None:
        logging.shutdown()   # registered at logging's import, i.e. before this handler: run it here
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):   # a closed pipe (`| head`) or a closed stream: nothing to flush to
                pass
        os._exit(outcome["code"])

    # atexit runs handlers last-registered-first: registered before the command starts Spark,
    # MLflow or OpenLineage, this one runs after all of theirs. The two registered earlier, at
    # import: logging's (run above) and pyarrow's S3 finalizer (only needed by the destructors
    # that os._exit does not run).
    atexit.register(leave)
    code = command()
    outcome["code"] = code
    sys.exit(code)
