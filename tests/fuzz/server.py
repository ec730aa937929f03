"""A fork server that runs one ``modelport`` command per fuzz case, in a child process with a
memory cap and a wall-clock deadline.

Started once per test session (``python -m tests.fuzz.server``, see ``harness.py``): it imports
modelport and its importers once, then for each request read from stdin (one JSON line:
``{"argv": [...], "timeout": s, "mem_mb": n, "log": path}``) forks a child that runs
``modelport.cli.main(argv)`` in-process with ``RLIMIT_AS`` raised by only ``mem_mb`` above what
the process already maps, its stdout/stderr going to ``log``. The server waits at most
``timeout`` seconds, kills the child past it, and answers one JSON line:
``{"rc": exit status or null, "signal": n or null, "timed_out": bool, "seconds": t}``.

A case that allocates what a file merely claims fails in the child with MemoryError (reported
by the CLI as an internal error, exit 3) instead of taking the machine down; a case that loops
is killed and reported as timed out. Forking keeps each case at the cost of the conversion
itself, not of a Python start-up.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import sys
import time


def _preload(kinds: list[str]) -> None:
    import modelport.cli  # noqa: F401
    import modelport.convert.pipeline  # noqa: F401
    import modelport.exporters.onnx  # noqa: F401
    import modelport.graph_ir.passes  # noqa: F401
    import modelport.importers.caffe.load  # noqa: F401
    import modelport.importers.keras.load  # noqa: F401
    import modelport.importers.mxnet.load  # noqa: F401
    import modelport.importers.onnx.load  # noqa: F401
    import modelport.importers.tensorflow.load  # noqa: F401
    import modelport.importers.tensorflow.safety  # noqa: F401
    import modelport.importers.torch7.load  # noqa: F401
    from modelport.importers.keras.load import load_translators

    load_translators()
    if "torch" in kinds:
        import torch

        import modelport.importers.pytorch.load  # noqa: F401

        torch.set_num_threads(1)  # no thread pool to inherit half-alive across fork()


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _child(argv: list[str], mem_mb: int, log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    code = 99
    try:
        limit = _vm_size() + mem_mb * (1 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        from modelport.cli import main

        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # the harness itself failed: make it visible, not a pass
        import traceback

        traceback.print_exc()
        code = 99
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _run(request: dict) -> dict:
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(request["argv"], int(request.get("mem_mb", 1536)), request["log"])
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], float(request.get("timeout", 30)))
        timed_out = not ready
        if timed_out:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(pidfd)
    seconds = time.monotonic() - start
    rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    return {"rc": None if timed_out else rc, "signal": None if timed_out else sig,
            "timed_out": timed_out, "seconds": round(seconds, 4)}


def main() -> None:
    _preload(sys.argv[1:])
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        out.write(json.dumps(_run(json.loads(line))) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
