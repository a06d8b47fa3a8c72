"""The object store: etcd + watch cache, in memory.

- One global, monotonically increasing resourceVersion (a string on the wire),
  as etcd's revision is in a real cluster.
- Stored objects are never mutated in place: every write stores a new dict, so
  readers may hand out references (and serialise them) without holding the lock.
- A bounded history of events (the watch cache window) serves watches from a
  resourceVersion; a resourceVersion older than the window is "Expired" (410).
- A write that changes nothing is a no-op (no new resourceVersion, no event),
  as in the real API server. This matters: the operator writes status on every
  reconcile and watchers would otherwise see endless MODIFIED events.

Also here: label/field selectors, JSON merge patch and JSON patch.
"""

import base64
import collections
import copy
import json
import re
import threading
import time


class ApiError(Exception):
    """An error answered as a v1 Status."""

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self):
        s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            s["details"] = self.details
        return s


def now_rfc3339(t=None):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


def parse_rfc3339(s):
    import calendar
    s = s.strip()
    m = re.match(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", s)
    if not m:
        raise ValueError("bad time " + s)
    y, mo, d, h, mi, se = (int(x) for x in m.groups()[:6])
    t = calendar.timegm((y, mo, d, h, mi, se, 0, 0, 0))
    if m.group(7):
        t += float(m.group(7))
    tz = m.group(8)
    if tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        t -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return t


MAX_OBJECT_BYTES = 1536 * 1024     # etcd --max-request-bytes default (1.5 MiB)

Event = collections.namedtuple("Event", "rv type plural namespace obj old")


class Store:
    def __init__(self, history_size=1000, start_rv=1000):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = start_rv
        self.objects = collections.defaultdict(dict)   # plural -> {(ns, name): obj}
        # One window per resource, as the API server's watch cache has one per type: a
        # quiet kind's old resourceVersion stays valid however busy the others are.
        self.history_size = max(1, history_size)
        self.history = collections.defaultdict(lambda: collections.deque(maxlen=self.history_size))
        # Events of a resource with rv <= compacted[plural] may have left its window.
        self.compacted = collections.defaultdict(lambda: start_rv)
        self.listeners = []    # called (under the lock) with each Event; must not block
        self.closed = False

    # ---- reads ---------------------------------------------------------------

    def get(self, plural, ns, name):
        with self.lock:
            return self.objects[plural].get((ns or "", name))

    def list(self, plural, ns=None, selector=None):
        """Returns (items sorted by namespace/name, resourceVersion)."""
        with self.lock:
            items = [o for (ons, _), o in self.objects[plural].items() if ns is None or ons == ns]
            rv = self.rv
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        if selector is not None:
            items = [o for o in items if selector.matches(o)]
        return items, rv

    def count(self, plural):
        with self.lock:
            return len(self.objects[plural])

    def namespaces(self):
        with self.lock:
            return sorted({ns for objs in self.objects.values() for (ns, _) in objs if ns})

    # ---- writes (callers hold no expectations about object identity) -------------

    def _emit(self, type_, plural, obj, old):
        ev = Event(self.rv, type_, plural, obj["metadata"].get("namespace", ""), obj, old)
        hist = self.history[plural]
        if len(hist) == hist.maxlen:
            self.compacted[plural] = hist[0].rv
        hist.append(ev)
        for fn in self.listeners:
            fn(ev)
        self.cond.notify_all()

    def put(self, plural, obj, old=None, bump_generation=False):
        """Stores obj (a fresh dict the caller will not touch again) replacing `old`
        (the currently stored object, or None for a create). Handles no-ops,
        resourceVersion, generation, and removal once a deleting object has no
        finalizers. Returns the stored object (or the removed one)."""
        with self.lock:
            md = obj["metadata"]
            key = (md.get("namespace", ""), md["name"])
            cur = self.objects[plural].get(key)
            if cur is not old:
                # The caller computed obj from a stale read: this is a bug in the caller
                # (API handlers hold the lock across read-modify-write).
                raise ApiError(409, "Conflict", "internal: concurrent modification of %s" % md["name"])
            if old is not None:
                if bump_generation:
                    md["generation"] = old["metadata"].get("generation", 1) + 1
                else:
                    md["generation"] = old["metadata"].get("generation", 1)
                md["resourceVersion"] = old["metadata"]["resourceVersion"]
                if obj == old:
                    return old   # no-op write: nothing changes, no event
            if len(json.dumps(obj, separators=(",", ":"))) > MAX_OBJECT_BYTES:
                # etcd's request limit; e.g. a Task status with megabytes of stdout
                raise ApiError(500, "InternalError", "etcdserver: request is too large")
            if md.get("deletionTimestamp") and not md.get("finalizers"):
                if old is None:
                    return obj
                return self._remove(plural, key, obj)
            self.rv += 1
            md["resourceVersion"] = str(self.rv)
            self.objects[plural][key] = obj
            self._emit("ADDED" if old is None else "MODIFIED", plural, obj, old)
            return obj

    def remove(self, plural, ns, name):
        with self.lock:
            key = (ns or "", name)
            cur = self.objects[plural].get(key)
            if cur is None:
                return None
            return self._remove(plural, key, copy.deepcopy(cur))

    def _remove(self, plural, key, last):
        old = self.objects[plural].pop(key)
        self.rv += 1
        last["metadata"]["resourceVersion"] = str(self.rv)
        self._emit("DELETED", plural, last, old)
        return last

    # ---- watch support ---------------------------------------------------------

    def compacted_rv(self, plural):
        with self.lock:
            return self.compacted[plural]

    def events_after(self, plural, rv):
        """Events of `plural` with resourceVersion > rv, or None if some may have been
        compacted away."""
        with self.lock:
            if rv < self.compacted[plural]:
                return None
            out = []
            for ev in reversed(self.history[plural]):
                if ev.rv <= rv:
                    break
                out.append(ev)
            out.reverse()
            return out


# ---- selectors ------------------------------------------------------------------

_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                        r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def label_key_error(k):
    if not isinstance(k, str) or not k:
        return "name part must be non-empty"
    prefix, _, name = k.rpartition("/")
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if prefix and len(prefix) > 253:
        return "prefix part must be no more than 253 characters"
    if not _LABEL_KEY.match(k):
        return ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
                "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
                "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
    return None


def label_value_error(v):
    if not isinstance(v, str):
        return "must be a string"
    if len(v) > 63:
        return "must be no more than 63 characters"
    if not _LABEL_VALUE.match(v):
        return ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
                "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
                "'my_value',  or '12345', regex used for validation is "
                "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
    return None


class Selector:
    """A parsed labelSelector plus fieldSelector (all requirements ANDed)."""

    def __init__(self, label="", field=""):
        self.label_reqs = parse_label_selector(label or "")
        self.field_reqs = parse_field_selector(field or "")

    def empty(self):
        return not self.label_reqs and not self.field_reqs

    def matches(self, obj):
        md = obj.get("metadata") or {}
        labels = md.get("labels") or {}
        for key, op, vals in self.label_reqs:
            present = key in labels
            v = labels.get(key)
            if op == "=" and not (present and v == vals[0]):
                return False
            if op == "!=" and present and v == vals[0]:
                return False
            if op == "in" and not (present and v in vals):
                return False
            if op == "notin" and present and v in vals:
                return False
            if op == "exists" and not present:
                return False
            if op == "!" and present:
                return False
        for field, op, val in self.field_reqs:
            actual = md.get("name") if field == "metadata.name" else md.get("namespace", "")
            if (actual == val) != (op == "="):
                return False
        return True


def parse_label_selector(s):
    reqs = []
    i, n = 0, len(s)

    def bad(msg):
        raise ApiError(400, "BadRequest", "unable to parse requirement: " + msg)

    while i < n:
        while i < n and s[i] in " ,":
            i += 1
        if i >= n:
            break
        # split off one requirement: up to a comma not inside parentheses
        depth, j = 0, i
        while j < n and (s[j] != "," or depth):
            depth += s[j] == "("
            depth -= s[j] == ")"
            j += 1
        part = s[i:j].strip()
        i = j + 1
        m = re.match(r"^(!?)\s*([^\s!=(),]+)\s*$", part)
        if m:
            key = m.group(2)
            if label_key_error(key):
                bad("invalid label key %r: %s" % (key, label_key_error(key)))
            reqs.append((key, "!" if m.group(1) else "exists", []))
            continue
        m = re.match(r"^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$", part)
        if m:
            key, op, val = m.groups()
            if label_key_error(key):
                bad("invalid label key %r: %s" % (key, label_key_error(key)))
            if label_value_error(val):
                bad("invalid label value: %r: %s" % (val, label_value_error(val)))
            reqs.append((key, "!=" if op == "!=" else "=", [val]))
            continue
        m = re.match(r"^([^\s!=(),]+)\s+(in|notin)\s*\(([^()]*)\)$", part)
        if m:
            key, op, vals = m.groups()
            if label_key_error(key):
                bad("invalid label key %r: %s" % (key, label_key_error(key)))
            vals = [v.strip() for v in vals.split(",")]
            for v in vals:
                if label_value_error(v):
                    bad("invalid label value: %r: %s" % (v, label_value_error(v)))
            reqs.append((key, op, vals))
            continue
        bad("found '%s', expected: identifier" % part)
    return reqs


def parse_field_selector(s):
    reqs = []
    for part in filter(None, (p.strip() for p in s.split(","))):
        m = re.match(r"^([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)$", part)
        if not m:
            raise ApiError(400, "BadRequest", "invalid selector: '%s'; can't understand '%s'" % (s, part))
        field, op, val = m.groups()
        if field not in ("metadata.name", "metadata.namespace"):
            raise ApiError(400, "BadRequest", "field label not supported: " + field)
        reqs.append((field, "!=" if op == "!=" else "=", val))
    return reqs


# ---- patches ---------------------------------------------------------------------

def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def _ptr(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError("invalid JSON pointer %r" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, tokens):
    cur = doc
    for t in tokens:
        if isinstance(cur, list):
            cur = cur[int(t)]
        elif isinstance(cur, dict):
            cur = cur[t]
        else:
            raise KeyError(t)
    return cur


def json_patch(doc, ops):
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    if not isinstance(ops, list):
        raise ValueError("a JSON patch must be an array of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        kind = op.get("op")
        tokens = _ptr(op.get("path", ""))
        try:
            if kind in ("add", "replace", "remove", "move", "copy") and not tokens:
                if kind in ("add", "replace"):
                    doc = copy.deepcopy(op["value"])
                    continue
                raise ValueError("cannot %s the document root" % kind)
            if kind == "test":
                if _walk(doc, tokens) != op.get("value"):
                    raise ValueError("testing value %s failed" % op.get("path"))
                continue
            if kind in ("move", "copy"):
                val = _walk(doc, _ptr(op["from"]))
                if kind == "move":
                    json_patch_remove(doc, _ptr(op["from"]))
                _add(doc, tokens, copy.deepcopy(val))
            elif kind == "add":
                _add(doc, tokens, copy.deepcopy(op["value"]))
            elif kind == "remove":
                json_patch_remove(doc, tokens)
            elif kind == "replace":
                parent = _walk(doc, tokens[:-1])
                if isinstance(parent, list):
                    parent[int(tokens[-1])] = copy.deepcopy(op["value"])
                else:
                    if tokens[-1] not in parent:
                        raise ValueError("replace operation does not apply: doc is missing key: "
                                         + op.get("path", ""))
                    parent[tokens[-1]] = copy.deepcopy(op["value"])
            else:
                raise ValueError("unknown JSON patch operation %r" % kind)
        except (KeyError, IndexError, TypeError) as e:
            raise ValueError("%s operation does not apply: doc is missing path: %s (%s)"
                             % (kind, op.get("path"), e))
    return doc


def _add(doc, tokens, value):
    parent = _walk(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            idx = int(last)
            if idx > len(parent):
                raise IndexError(idx)
            parent.insert(idx, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise KeyError(last)


def json_patch_remove(doc, tokens):
    parent = _walk(doc, tokens[:-1])
    if isinstance(parent, list):
        del parent[int(tokens[-1])]
    else:
        del parent[tokens[-1]]


# ---- list continuation -----------------------------------------------------------

def encode_continue(rv, ns, name):
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": "%s/%s\x00" % (ns, name)})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token):
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        d = json.loads(raw)
        ns, _, name = d["start"].rstrip("\x00").partition("/")
        return int(d["rv"]), ns, name
    except Exception:
        raise ApiError(400, "BadRequest", "continue key is not valid: incorrect encoded start resourceVersion")
