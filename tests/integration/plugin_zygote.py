"""Forks ``rds-csi plugin`` processes from a parent that has already imported the driver.

A restarted plugin spends about 1.5 s of a loaded 2-core machine on interpreter start and imports before it does
anything a crash test is about; the crash matrix restarts it hundreds of times. Each child runs
``rds_csi.cli.main`` with the argv it is given, as the console script does, only with the imports already made.
It dies with this parent (``PR_SET_PDEATHSIG``), so a test that dies cannot leave plugins behind. With
``--kubernetes`` the Kubernetes client's API classes are built here too: the client builds its models on first
use, which costs a controller start several seconds more than everything else together.

One JSON request per line on stdin, one JSON answer per line on stdout:
``{"spawn": [argv...], "log": path}`` -> ``{"pid": N}``; ``{"poll": N}`` -> ``{"status": null | code}``;
``{"reap": N}`` -> ``{"status": code}`` (a negative code is the signal that ended the child).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys

import rds_csi.cli
import rds_csi.plugin.lifecycle  # the heavy imports, made once here instead of in every child

_PR_SET_PDEATHSIG = 1


def _child(argv: list[str], log: str) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    code = 1
    try:
        code = rds_csi.cli.main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    if "--kubernetes" in sys.argv[1:]:
        from rds_csi.kube.api import KubeApi, KubeSettings

        KubeApi(KubeSettings(base_url="http://127.0.0.1:1")).close()  # builds the API classes; connects nowhere
    for line in sys.stdin:
        request = json.loads(line)
        answer: dict[str, int | None]
        if "spawn" in request:
            pid = os.fork()
            if pid == 0:
                _child(list(request["spawn"]), str(request["log"]))
            answer = {"pid": pid}
        elif "poll" in request:
            pid, status = os.waitpid(int(request["poll"]), os.WNOHANG)
            answer = {"status": os.waitstatus_to_exitcode(status) if pid else None}
        else:
            _, status = os.waitpid(int(request["reap"]), 0)
            answer = {"status": os.waitstatus_to_exitcode(status)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
