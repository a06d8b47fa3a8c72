"""The thread pool both SDK baselines share (bench/sdk_client.py, bench/gateway_sdk_client.py):
the SDKs are synchronous, so IN_FLIGHT jobs run at once, one thread and one client each.
Standard library only.
"""
import threading
import time


def run(jobs, in_flight, new_client, one_job, catch=()):
    """Runs one_job(client, i) for i in 0..jobs-1 on min(in_flight, jobs) threads, each with
    its own new_client(); an exception in catch counts as a failed job. Returns (ok, wall_s,
    cpu_s, clients)."""
    lock = threading.Lock()
    todo = list(range(jobs))
    ok = [0]
    clients = []

    def worker():
        c = new_client()
        with lock:
            clients.append(c)
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop()
            try:
                good = one_job(c, i)
            except catch:
                good = False
            if good:
                with lock:
                    ok[0] += 1

    t0, c0 = time.monotonic(), time.process_time()
    threads = [threading.Thread(target=worker) for _ in range(min(in_flight, jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ok[0], time.monotonic() - t0, time.process_time() - c0, clients
