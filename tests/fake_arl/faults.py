"""Fault injection: parses a SPEC and decides, per request, what goes wrong.

SPEC is a comma-separated list of KEY=VALUE items; some take ':OPT=VAL' options.

  500=P, 503=P          answer a resource request with that Status code (InternalError /
                        ServiceUnavailable), with probability P (0..1)
  429=P                 answer 429 TooManyRequests with a Retry-After header
  reset=P               close the connection abruptly (TCP RST) instead of answering
    options of these four, appended as :OPT=VAL:
    :retry-after=S      (429) seconds in Retry-After (default 1)
    :after=F            (500, 503, reset) the fraction F (default 0) of these faults that
                        happen AFTER the request was carried out: e.g. a create that
                        "failed" with 500 but exists, so the retry gets 409 AlreadyExists
    :verbs=V|V..        only for these verbs (get list watch create update patch delete
                        deletecollection); default all
    :resources=R|R..    only for these resources (warmpools sandboxes tasks pods,
                        sandboxes/status ...); default all
    :max=N              inject this fault N times at most, then never again (a test then
                        knows the faults are over without timing them)
  latency=D             add D to every resource request (D like 50ms, 1s, or a range 10ms-200ms),
                        before it is carried out
    :verbs=V|V.., :resources=R|R..   only those requests (e.g. Task creates held back)
  watch-cut=D           cut every watch stream abruptly (no final chunk) after D
  watch-410=P           answer a watch with an ERROR event carrying a 410 Expired Status
                        (what the API server does for a too-old resourceVersion)
  sandbox-fail=P        a Sandbox goes to phase Failed instead of Bound
    :max=N              only the next N Sandboxes (sandbox-fail=1:max=3: exactly the next
                        3 that get a pod fail, whatever the order of requests)
  no-idle=POOL          the pool never has an idle pod: its new pods never become Running
                        and its existing ones are not handed out (repeat the item for
                        several pools; POOL may be NS/NAME)
  slow-operator=N       multiply every operator delay by N
  forbid=VERB/RESOURCE  answer 403 Forbidden for that verb on that resource (repeatable;
                        '*' matches any verb or resource)
    :scope=cluster      only requests across all namespaces (/apis/G/V/PLURAL), as for a
                        user whose Role grants the verb in namespaces but no ClusterRole does

One random number is drawn per resource request and compared with the cumulative
probabilities in the order 429, 500, 503, reset, so the rates add up exactly.
Discovery (/version, /api, /apis, /openapi) and /_fake/* are never faulted.
The random generator is seeded (--seed) so a single-threaded test is repeatable.
"""

import random
import re
import threading

VERBS = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}


def parse_duration(s):
    """'50ms', '1.5s', '2m', '3' (seconds) -> seconds as float."""
    s = s.strip()
    m = re.match(r"^([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?$", s)
    if not m:
        raise ValueError("bad duration %r (use e.g. 50ms, 1.5s, 2m)" % s)
    v = float(m.group(1))
    return v * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def _prob(s, key):
    v = float(s)
    if not 0 <= v <= 1:
        raise ValueError("%s: probability %s is not within 0..1" % (key, s))
    return v


class ErrorFault:
    def __init__(self, key, p, opts):
        self.key = key            # "429", "500", "503", "reset"
        self.p = p
        self.retry_after = int(float(opts.pop("retry-after", "1")))
        self.after = float(opts.pop("after", "0"))
        self.verbs = set(opts.pop("verbs").split("|")) if "verbs" in opts else None
        self.resources = set(opts.pop("resources").split("|")) if "resources" in opts else None
        self.left = int(opts.pop("max")) if "max" in opts else None
        if self.left is not None and self.left < 0:
            raise ValueError("%s: max must be >= 0" % key)
        if opts:
            raise ValueError("%s: unknown option(s) %s" % (key, ", ".join(opts)))
        if self.verbs and not self.verbs <= VERBS:
            raise ValueError("%s: unknown verb(s) %s" % (key, ", ".join(self.verbs - VERBS)))

    def applies(self, verb, resource):
        return ((self.left is None or self.left > 0)
                and (self.verbs is None or verb in self.verbs)
                and (self.resources is None or resource in self.resources))


class Decision:
    """What happens to one request."""

    def __init__(self):
        self.latency = 0.0
        self.error = None        # 429 / 500 / 503
        self.reset = False
        self.after = False       # error/reset after carrying out the request
        self.retry_after = 1
        self.forbidden = False
        self.label = None        # for the request log

    def __bool__(self):
        return bool(self.latency or self.error or self.reset or self.forbidden)


class Faults:
    def __init__(self, spec="", seed=1):
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.set(spec)

    def set(self, spec):
        """Parses and installs a new SPEC (raises ValueError, leaving the old one)."""
        errors, latency, watch_cut, watch_410 = [], None, None, 0.0
        sandbox_fail, no_idle, slow, forbid = 0.0, set(), 1.0, []
        sandbox_fail_left = None
        for item in filter(None, (x.strip() for x in (spec or "").split(","))):
            head, *optparts = item.split(":")
            if "=" not in head:
                raise ValueError("fault item %r: expected KEY=VALUE" % item)
            key, val = (x.strip() for x in head.split("=", 1))
            opts = {}
            for o in optparts:
                if "=" not in o:
                    raise ValueError("fault item %r: option %r is not OPT=VAL" % (item, o))
                k, v = o.split("=", 1)
                opts[k.strip()] = v.strip()
            if key in ("429", "500", "503", "reset"):
                errors.append(ErrorFault(key, _prob(val, key), opts))
                continue
            scope = opts.pop("scope", None) if key == "forbid" else None
            if key == "latency":
                lat_verbs = set(opts.pop("verbs").split("|")) if "verbs" in opts else None
                lat_resources = set(opts.pop("resources").split("|")) if "resources" in opts else None
                if lat_verbs and not lat_verbs <= VERBS:
                    raise ValueError("latency: unknown verb(s) %s" % ", ".join(lat_verbs - VERBS))
            fail_max = opts.pop("max", None) if key == "sandbox-fail" else None
            if opts:
                raise ValueError("fault %s takes no options" % key if key != "forbid"
                                 else "forbid: unknown option(s) %s" % ", ".join(opts))
            if key == "latency":
                lo, _, hi = val.partition("-")
                latency = (parse_duration(lo), parse_duration(hi or lo), lat_verbs, lat_resources)
            elif key == "watch-cut":
                watch_cut = parse_duration(val)
            elif key == "watch-410":
                watch_410 = _prob(val, key)
            elif key == "sandbox-fail":
                sandbox_fail = _prob(val, key)
                sandbox_fail_left = int(fail_max) if fail_max is not None else None
                if sandbox_fail_left is not None and sandbox_fail_left < 0:
                    raise ValueError("sandbox-fail: max must be >= 0")
            elif key == "no-idle":
                no_idle.add(val)
            elif key == "slow-operator":
                slow = float(val)
                if slow <= 0:
                    raise ValueError("slow-operator must be > 0")
            elif key == "forbid":
                verb, _, res = val.partition("/")
                if not res:
                    raise ValueError("forbid=%s: expected VERB/RESOURCE" % val)
                if scope not in (None, "cluster"):
                    raise ValueError("forbid=%s: scope must be 'cluster'" % val)
                forbid.append((verb, res, scope))
            else:
                raise ValueError("unknown fault %r" % key)
        order = {"429": 0, "500": 1, "503": 2, "reset": 3}
        errors.sort(key=lambda e: order[e.key])
        if sum(e.p for e in errors) > 1:
            raise ValueError("fault probabilities add up to more than 1")
        with self.lock:
            self.spec = spec or ""
            self.errors = errors
            self.latency = latency
            self.watch_cut = watch_cut
            self.watch_410 = watch_410
            self.sandbox_fail_p = sandbox_fail
            self.sandbox_fail_left = sandbox_fail_left
            self.no_idle_pools = no_idle
            self.slow = slow
            self.forbid = forbid

    def decide(self, verb, resource, cluster=False):
        """cluster: the request is across all namespaces (no namespace in its path)."""
        d = Decision()
        with self.lock:
            for fv, fr, scope in self.forbid:
                if fv in ("*", verb) and fr in ("*", resource) and (scope is None or cluster):
                    d.forbidden = True
                    d.label = "forbid"
                    return d
            if self.latency:
                lo, hi, verbs, resources = self.latency
                if (verbs is None or verb in verbs) and (resources is None or resource in resources):
                    d.latency = lo if lo == hi else self.rng.uniform(lo, hi)
            if not self.errors:
                return d
            u = self.rng.random()
            acc = 0.0
            for e in self.errors:
                acc += e.p
                if u < acc:
                    if not e.applies(verb, resource):
                        break
                    if e.left is not None:
                        e.left -= 1
                    if e.key == "reset":
                        d.reset = True
                    else:
                        d.error = int(e.key)
                        d.retry_after = e.retry_after
                    if e.key != "429" and e.after and self.rng.random() < e.after:
                        d.after = True
                    d.label = e.key + ("-after" if d.after else "")
                    break
        return d

    def watch_should_410(self):
        with self.lock:
            return self.watch_410 > 0 and self.rng.random() < self.watch_410

    def sandbox_fail(self):
        with self.lock:
            if self.sandbox_fail_left == 0 or self.sandbox_fail_p <= 0:
                return False
            # p = 1 draws nothing: the other faults' random sequence stays as it was
            if self.sandbox_fail_p < 1 and self.rng.random() >= self.sandbox_fail_p:
                return False
            if self.sandbox_fail_left is not None:
                self.sandbox_fail_left -= 1
            return True

    def no_idle(self, ns, pool):
        with self.lock:
            return pool in self.no_idle_pools or ("%s/%s" % (ns, pool)) in self.no_idle_pools

    def slow_factor(self):
        with self.lock:
            return self.slow

    def watch_cut_after(self):
        with self.lock:
            return self.watch_cut
