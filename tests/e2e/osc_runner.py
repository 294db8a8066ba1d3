"""Runs ``openstack`` commands one after another in one process.

The ``openstack`` script is ``openstackclient.shell.main(argv)``; this calls the
same function for each command, so the CLI's parsing, requests and formatting
are the real ones, but its imports (seconds on a small machine) are paid once.

Protocol: one JSON list (argv) per line on stdin; one JSON object
``{"rc", "out", "err"}`` per line on the original stdout.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from contextlib import redirect_stderr, redirect_stdout

from openstackclient.shell import main


def serve() -> None:
    proto = sys.stdout
    for line in sys.stdin:
        argv = json.loads(line)
        out, err = io.StringIO(), io.StringIO()
        root = logging.getLogger()
        for handler in list(root.handlers):  # each run configures logging afresh
            root.removeHandler(handler)
        with redirect_stdout(out), redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as exc:  # argparse errors exit
                rc = exc.code if isinstance(exc.code, int) else 1
            except Exception as exc:  # reported like the script's traceback would be
                print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
                rc = 1
        proto.write(json.dumps({"rc": rc, "out": out.getvalue(), "err": err.getvalue()}) + "\n")
        proto.flush()


if __name__ == "__main__":
    serve()
