"""The pipe-reading loop the fake step runners share (fake_arl/executor.py's sidecar capture,
fake_gateway/gw_core.py's agent output events)."""
import os
import select
import time


def drain(fd, on_data, exited, stop=None):
    """Reads fd in chunks of up to 64 KiB, each handed to on_data, until EOF, a read error,
    stop() returning true, or, once the event `exited` (the step's process exited) is set,
    0.1 s of quiet: a background child holding the pipe must not hold the step open."""
    quiet_since = None
    while not (stop and stop()):
        try:
            ready, _, _ = select.select([fd], [], [], 0.05)
        except (OSError, ValueError):
            break
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            on_data(data)
            quiet_since = None
        elif exited.is_set():
            if quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 0.1:
                break
