"""Go's time.ParseDuration and Duration.String(), which the operator uses for
Task spec.timeout and status.duration. Durations are integers in nanoseconds."""

import re

_UNITS = {"ns": 1, "us": 1000, "\u00b5s": 1000, "\u03bcs": 1000, "ms": 10**6,
          "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def parse_duration(s):
    """time.ParseDuration: '300ms', '-1.5h', '2h45m'. Raises ValueError like Go errors."""
    orig = s
    if s in ("0", "+0", "-0"):
        return 0
    if not s:
        raise ValueError('time: invalid duration "%s"' % orig)
    neg = False
    if s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    total = 0
    if not s:
        raise ValueError('time: invalid duration "%s"' % orig)
    while s:
        m = re.match(r"^([0-9]*)(\.([0-9]*))?", s)
        whole, frac = m.group(1), m.group(3)
        if not whole and not frac:
            raise ValueError('time: invalid duration "%s"' % orig)
        s = s[m.end():]
        u = re.match(r"^[^0-9.]+", s)
        if not u:
            raise ValueError('time: missing unit in duration "%s"' % orig)
        unit = u.group(0)
        if unit not in _UNITS:
            raise ValueError('time: unknown unit "%s" in duration "%s"' % (unit, orig))
        s = s[u.end():]
        scale = _UNITS[unit]
        v = int(whole or "0") * scale
        if frac:
            # Go truncates the fraction to nanoseconds
            v += int(int(frac) * scale // 10 ** len(frac))
        total += v
        if total > 2**63 - 1:
            raise ValueError('time: invalid duration "%s"' % orig)
    return -total if neg else total


def _frac(v, prec):
    digits, printed = [], False
    for _ in range(prec):
        d = v % 10
        printed = printed or d != 0
        if printed:
            digits.append(str(d))
        v //= 10
    return ("." + "".join(reversed(digits)) if printed else ""), v


def duration_string(ns):
    """time.Duration(ns).String(): '1.234567891s', '2m3.5s', '1h0m0s', '900ms', '0s'."""
    ns = int(ns)
    if ns == 0:
        return "0s"
    neg, u = ns < 0, abs(ns)
    if u < 10**9:
        if u < 1000:
            out = "%dns" % u
        elif u < 10**6:
            f, w = _frac(u, 3)
            out = "%d%s\u00b5s" % (w, f)
        else:
            f, w = _frac(u, 6)
            out = "%d%sms" % (w, f)
    else:
        f, u = _frac(u, 9)
        out = "%d%ss" % (u % 60, f)
        u //= 60
        if u:
            out = "%dm" % (u % 60) + out
            u //= 60
            if u:
                out = "%dh" % u + out
    return ("-" if neg else "") + out
