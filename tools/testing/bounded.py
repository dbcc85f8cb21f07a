"""Waiting for a child process with a deadline, for the test and fuzz drivers."""

import os
import time


def wait_bounded(process, deadline):
    """Waits for `process` (a subprocess.Popen), killing it at time.monotonic() `deadline`;
    returns (wait status, resource usage) of the child, as os.wait4 gives them."""
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            return status, usage
        if time.monotonic() > deadline:
            process.kill()
            pid, status, usage = os.wait4(process.pid, 0)
            return status, usage
        time.sleep(0.01)
