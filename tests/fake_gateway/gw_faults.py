"""Fault injection for the fake gateway: parses a SPEC, decides per request.

SPEC is a comma-separated list of KEY=VALUE items, some with ':OPT=VAL' options
(the same shape as the fake ARL server's --faults):

  429=P                 answer 429 {"error":"rate limit exceeded"} + Retry-After (a storm: 429=1)
  500=P, 503=P          answer that status with {"error":"injected fault"}
  404=P                 answer 404 {"error":"session ID not found"} (a session the gateway no
                        longer knows: with :after=1 a DELETE that did delete it, as a retried
                        DELETE whose first answer was lost sees)
  reset=P               drop the connection (TCP RST): before the request is carried out,
                        or with :after=F mid-response, after it was carried out
    options of these five:
    :endpoints=E|E..    only these endpoints (healthz create get delete execute operation
                        upload download list history logs other); default all of them
    :after=F            (404, 500, 503, reset) the fraction F (default 0) that happens AFTER the
                        request was carried out (a create that "failed" but made a session;
                        a reset then cuts the answer halfway, a download loses its trailers)
    :retry-after=S      (429) Retry-After seconds (default 1)
    :max=N              at most N times, then never again (tests know when it is over)
  latency=D             add D (50ms, 1s) to every request [:endpoints=...]
  slow-alloc=D          session allocation takes D longer
  alloc-hang=P          an allocation never completes (until allocationTimeoutSeconds, the
                        admission timeout or the client leaves)  [:max=N]
  stuck-op=P            an async execute's operation stays "running" forever and runs
                        nothing (a claim that never becomes ready)  [:max=N]

One random number is drawn per request for 429/404/500/503/reset, compared with the cumulative
probabilities in that order. /_fake/* is never faulted. --seed makes it repeatable.
"""

import random
import re
import threading

ENDPOINTS = {"healthz", "create", "get", "delete", "execute", "operation", "upload", "download",
             "list", "history", "logs", "other"}


def parse_duration(s):
    m = re.match(r"^([0-9]*\.?[0-9]+)\s*(ms|s|m)?$", s.strip())
    if not m:
        raise ValueError("bad duration %r (use e.g. 50ms, 1.5s, 2m)" % s)
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[m.group(2)]


def _prob(v, key):
    p = float(v)
    if not 0 <= p <= 1:
        raise ValueError("%s: probability %s is not within 0..1" % (key, v))
    return p


class Fault:
    def __init__(self, key, value, opts):
        self.key = key
        self.p = _prob(value, key) if key not in ("latency", "slow-alloc") else 1.0
        self.duration = parse_duration(value) if key in ("latency", "slow-alloc") else 0.0
        self.after = float(opts.pop("after", "0"))
        self.retry_after = int(float(opts.pop("retry-after", "1")))
        self.endpoints = set(opts.pop("endpoints").split("|")) if "endpoints" in opts else None
        self.left = int(opts.pop("max")) if "max" in opts else None
        if opts:
            raise ValueError("%s: unknown option(s) %s" % (key, ", ".join(sorted(opts))))
        if self.endpoints and not self.endpoints <= ENDPOINTS:
            raise ValueError("%s: unknown endpoint(s) %s" % (key, ", ".join(sorted(self.endpoints - ENDPOINTS))))
        if self.left is not None and self.left < 0:
            raise ValueError("%s: max must be >= 0" % key)

    def applies(self, endpoint):
        return (self.endpoints is None or endpoint in self.endpoints) and (self.left is None or self.left > 0)

    def spend(self):
        if self.left is not None:
            self.left -= 1

    def describe(self):
        d = {"key": self.key, "p": self.p}
        if self.duration:
            d["duration"] = self.duration
        if self.left is not None:
            d["left"] = self.left
        if self.endpoints:
            d["endpoints"] = sorted(self.endpoints)
        if self.after:
            d["after"] = self.after
        return d


ERROR_KEYS = ("429", "404", "500", "503", "reset")
KEYS = set(ERROR_KEYS) | {"latency", "slow-alloc", "alloc-hang", "stuck-op"}


def parse(spec):
    faults = []
    for item in [x.strip() for x in (spec or "").split(",") if x.strip()]:
        head, *optparts = item.split(":")
        key, eq, value = head.partition("=")
        if not eq or key not in KEYS:
            raise ValueError("unknown fault %r (known: %s)" % (item, ", ".join(sorted(KEYS))))
        opts = {}
        for o in optparts:
            k, eq, v = o.partition("=")
            if not eq:
                raise ValueError("%s: option %r is not OPT=VAL" % (key, o))
            opts[k] = v
        faults.append(Fault(key, value, opts))
    return faults


class Faults:
    def __init__(self, spec="", seed=None):
        self.mu = threading.Lock()
        self.rng = random.Random(seed)
        self.spec = ""
        self.items = []
        self.set(spec)

    def set(self, spec):
        items = parse(spec)            # raises ValueError before anything changes
        with self.mu:
            self.items = items
            self.spec = spec or ""

    def describe(self):
        with self.mu:
            return {"spec": self.spec, "faults": [f.describe() for f in self.items]}

    def decide(self, endpoint):
        """Returns (fault, after) for the request, or (None, False)."""
        with self.mu:
            cands = [f for f in self.items if f.key in ERROR_KEYS and f.applies(endpoint)]
            if not cands:
                return None, False
            x = self.rng.random()
            acc = 0.0
            for key in ERROR_KEYS:
                for f in cands:
                    if f.key != key:
                        continue
                    acc += f.p
                    if x < acc:
                        f.spend()
                        after = key in ("404", "500", "503", "reset") and self.rng.random() < f.after
                        return f, after
            return None, False

    def latency(self, endpoint):
        with self.mu:
            return sum(f.duration for f in self.items if f.key == "latency" and f.applies(endpoint))

    def alloc_delay(self):
        with self.mu:
            return sum(f.duration for f in self.items if f.key == "slow-alloc")

    def take(self, key):
        """For alloc-hang and stuck-op: does this allocation/operation get the fault?"""
        with self.mu:
            for f in self.items:
                if f.key == key and (f.left is None or f.left > 0) and self.rng.random() < f.p:
                    f.spend()
                    return True
            return False
