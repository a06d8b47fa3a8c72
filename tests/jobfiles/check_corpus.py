#!/usr/bin/python3
"""Check the job-file corpus against the JSON Schema or the C validator.

    check_corpus.py --mode schema [FILE...]
    check_corpus.py --mode c --arl-batch PATH [FILE...]

The corpus lives beside this script:

  valid/*.yaml     must be accepted (and so must the examples ../../jobs/*.yaml)
  invalid/*.yaml   each holds one error; its first line says where and what:

      # expect: LINE:COL: MESSAGE-SUBSTRING
      # expect: data/FILE:LINE:COL: MESSAGE-SUBSTRING   (error inside a dataset,
                                                         path relative to the job file)

  LINE or COL may be '*' where the exact position is left to the implementation
  (alias bombs, nesting depth). An optional second line

      # schema: skip REASON

  marks a rule JSON Schema cannot express; --mode schema then skips the file.

--mode schema  loads each file with PyYAML and validates it against
               schemas/job.schema.json: valid files must pass; invalid ones must
               fail (or be refused by PyYAML), and one of the errors must sit at
               the expected LINE:COL (the key for unknown keys, the mapping for
               missing keys, the value otherwise).
--mode c       runs `arl-batch validate FILE` from this directory with relative
               paths (invalid/x.yaml): valid files must exit 0; invalid ones must
               exit 2 and print a line containing `FILE:LINE:COL: error: `
               followed by MESSAGE-SUBSTRING (FILE is the job file, or for a
               dataset error the dataset's path as the job file resolves it,
               e.g. invalid/data/bad.jsonl).

Ends with `N passed, N failed`; exits 1 on any failure, 77 when a needed tool
(python3-yaml, python3-jsonschema, the binary) is missing.
"""

import argparse
import glob
import json
import os
import re
import subprocess
import tempfile
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SCHEMA = os.path.join(ROOT, "schemas", "job.schema.json")
SKIP = 77

EXPECT_RE = re.compile(
    r"^# expect: (?:(?P<file>[^:\s]*[^\d:\s*][^:\s]*):)?"
    r"(?P<line>\d+|\*):(?P<col>\d+|\*): (?P<msg>.+?)\s*$")
IMAGE_MARK = "# Needs: the busybox test image"
SCHEMA_SKIP_RE = re.compile(r"^# schema: skip\b(?P<reason>.*)$")


class Case:
    def __init__(self, rel, kind):
        self.rel = rel            # path relative to HERE, as given to arl-batch
        self.kind = kind          # 'valid', 'example' or 'invalid'
        self.expect = None        # (file or None, line, col, msg)
        self.schema_skip = None   # reason, or None
        self.bad_header = None

    @property
    def path(self):
        return os.path.join(HERE, self.rel)


def read_header(case):
    with open(case.path, "rb") as f:
        head = f.read(4096)
    lines = head.split(b"\n")[:2]
    try:
        first = lines[0].decode("utf-8")
        second = lines[1].decode("utf-8") if len(lines) > 1 else ""
    except UnicodeDecodeError:
        case.bad_header = "the first two lines are not UTF-8"
        return
    m = EXPECT_RE.match(first)
    if case.kind == "invalid":
        if not m:
            case.bad_header = "first line is not '# expect: LINE:COL: MESSAGE'"
            return
        case.expect = (m.group("file"), m.group("line"), m.group("col"), m.group("msg"))
    elif m:
        case.bad_header = "a valid file has an '# expect:' line"
        return
    s = SCHEMA_SKIP_RE.match(second)
    if s:
        case.schema_skip = s.group("reason").strip() or "(no reason given)"


def collect(args):
    cases = []
    if args.files:
        for f in args.files:
            a = os.path.abspath(f)
            rel = os.path.relpath(a, HERE)
            kind = "invalid" if rel.startswith("invalid" + os.sep) else \
                "valid" if rel.startswith("valid" + os.sep) else "example"
            cases.append(Case(rel, kind))
    else:
        for kind, pattern in (("valid", "valid/*.yaml"), ("invalid", "invalid/*.yaml")):
            for p in sorted(glob.glob(os.path.join(HERE, pattern))):
                cases.append(Case(os.path.relpath(p, HERE), kind))
        for p in sorted(glob.glob(os.path.join(ROOT, "jobs", "*.yaml"))):
            cases.append(Case(os.path.relpath(p, HERE), "example"))
    for c in cases:
        read_header(c)
    return cases


# ---------------------------------------------------------------- schema mode

def node_child(node, key, want_key=False):
    """The value (or key) node under a mapping/sequence node, or None."""
    import yaml
    if isinstance(node, yaml.MappingNode):
        found = None
        for k, v in node.value:          # the last duplicate wins, as in PyYAML
            if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                found = k if want_key else v
        return found
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int):
        if 0 <= key < len(node.value):
            return node.value[key]
    return None


def node_at(root, path):
    node = root
    for p in path:
        node = node_child(node, p)
        if node is None:
            return None
    return node


def pos(node):
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def error_positions(err, root):
    """Candidate (line, col, note) positions for a jsonschema error."""
    import yaml
    path = list(err.absolute_path)
    out = []
    node = node_at(root, path)
    v = err.validator
    if v is None or err.schema is False:
        # a 'false' subschema: a key that is not allowed here -> point at the key
        parent = node_at(root, path[:-1]) if path else None
        k = node_child(parent, path[-1], want_key=True) if parent is not None else None
        if k is not None:
            out.append(pos(k) + ("key not allowed",))
    elif v == "additionalProperties" and isinstance(err.instance, dict):
        props = err.schema.get("properties", {}) if isinstance(err.schema, dict) else {}
        pats = err.schema.get("patternProperties", {}) if isinstance(err.schema, dict) else {}
        for key in err.instance:
            if key in props or any(re.search(p, key) for p in pats):
                continue
            k = node_child(node, key, want_key=True)
            if k is not None:
                out.append(pos(k) + ("unknown key %r" % key,))
        # additionalProperties with a schema (pools): the error is about a value
        if not out and node is not None:
            out.append(pos(node) + ("additionalProperties",))
    elif "propertyNames" in err.relative_schema_path and isinstance(node, yaml.MappingNode):
        k = node_child(node, err.instance, want_key=True)
        if k is not None:
            out.append(pos(k) + ("property name",))
    elif node is not None:
        out.append(pos(node) + (v,))
    for sub in err.context or ():
        out.extend(error_positions(sub, root))
    return out


def run_schema(cases):
    try:
        import yaml
        import jsonschema
    except ImportError as e:
        print("skip: %s (apt-get install python3-yaml python3-jsonschema)" % e)
        return SKIP
    with open(SCHEMA) as f:
        schema = json.load(f)
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        print("FAIL %s: not a valid draft 2020-12 schema: %s" % (SCHEMA, e.message))
        return 1
    validator = jsonschema.Draft202012Validator(schema)
    npass = nfail = 0

    for c in cases:
        if c.bad_header:
            print("FAIL %s: %s" % (c.rel, c.bad_header))
            nfail += 1
            continue
        if c.schema_skip:
            print("SKIP %s: %s" % (c.rel, c.schema_skip))
            continue
        try:
            with open(c.path, encoding="utf-8") as f:
                text = f.read()
            root = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.load(text, Loader=yaml.SafeLoader)
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            if c.kind == "invalid":
                mark = getattr(e, "problem_mark", None)
                _, eline, ecol, _ = c.expect
                note = ""
                if mark is not None and not (
                        (eline == "*" or int(eline) == mark.line + 1)
                        and (ecol == "*" or int(ecol) == mark.column + 1)):
                    note = "; note: PyYAML places it at %d:%d" % (mark.line + 1, mark.column + 1)
                print("PASS %s (refused by PyYAML: %s%s)"
                      % (c.rel, str(e).splitlines()[0], note))
                npass += 1
            else:
                print("FAIL %s: PyYAML refused it: %s" % (c.rel, e))
                nfail += 1
            continue
        errors = list(validator.iter_errors(data))
        if c.kind != "invalid":
            if errors:
                print("FAIL %s:" % c.rel)
                for e in errors:
                    p = error_positions(e, root) if root is not None else []
                    where = "%d:%d" % p[0][:2] if p else "?"
                    print("    %s: %s (at /%s)" % (where, e.message,
                                                 "/".join(map(str, e.absolute_path))))
                nfail += 1
            else:
                print("PASS %s" % c.rel)
                npass += 1
            continue
        if not errors:
            print("FAIL %s: the schema accepts it (expected %s:%s: %s)"
                  % ((c.rel,) + c.expect[1:]))
            nfail += 1
            continue
        efile, eline, ecol, _ = c.expect
        cands = []
        for e in errors:
            cands.extend(error_positions(e, root) if root is not None else [])
        if efile:
            print("PASS %s (rejected; the expected position is in %s: not checked)"
                  % (c.rel, efile))
            npass += 1
            continue

        def match(p):
            return (eline == "*" or int(eline) == p[0]) and (ecol == "*" or int(ecol) == p[1])
        if any(match(p) for p in cands):
            print("PASS %s" % c.rel)
            npass += 1
        elif not cands:
            print("PASS %s (rejected; note: no position could be derived)" % c.rel)
            npass += 1
        else:
            print("FAIL %s: rejected, but not at %s:%s; errors:" % (c.rel, eline, ecol))
            for e in errors:
                ps = ", ".join("%d:%d" % p[:2] for p in error_positions(e, root))
                print("    [%s] %s (at /%s)" % (ps, e.message,
                                             "/".join(map(str, e.absolute_path))))
            nfail += 1
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


# ---------------------------------------------------------------- C mode

def run_c(cases, binary, timeout, verbose):
    binary = os.path.abspath(binary)
    if not os.access(binary, os.X_OK):
        print("skip: %s is not an executable" % binary)
        return SKIP
    npass = nfail = 0
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        # Examples that run from the busybox test image validate only with it loaded.
        if any(IMAGE_MARK.encode() in open(os.path.join(HERE, c.rel), "rb").read() for c in cases):
            env["ARL_BATCH_IMAGES"] = os.path.join(tmp, "images")
            for tag in ("1", "2"):
                out = os.path.join(tmp, "bb" + tag)
                subprocess.run([sys.executable, os.path.join(ROOT, "tests", "images",
                                "build_busybox.py"), out, "--tag", "arl-test/busybox:" + tag],
                               check=True, stdout=subprocess.DEVNULL)
                subprocess.run([binary, "image", "load", os.path.join(out, "docker.tar")],
                               env=env, check=True, stdout=subprocess.DEVNULL)
        return run_cases(cases, binary, timeout, verbose, env)


def run_cases(cases, binary, timeout, verbose, env):
    npass = nfail = 0
    for c in cases:
        if c.bad_header:
            print("FAIL %s: %s" % (c.rel, c.bad_header))
            nfail += 1
            continue
        try:
            r = subprocess.run([binary, "validate", c.rel], cwd=HERE, stdin=subprocess.DEVNULL, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        except subprocess.TimeoutExpired:
            print("FAIL %s: still running after %ds" % (c.rel, timeout))
            nfail += 1
            continue
        err = r.stderr.decode("utf-8", "replace")
        ok, why = True, ""
        if c.kind != "invalid":
            if r.returncode != 0:
                ok, why = False, "exit %d, expected 0" % r.returncode
        else:
            efile, eline, ecol, emsg = c.expect
            shown = c.rel if not efile else \
                os.path.normpath(os.path.join(os.path.dirname(c.rel), efile))
            where = "%s:%s:%s: error: " % (
                re.escape(shown),
                r"\d+" if eline == "*" else eline,
                r"\d+" if ecol == "*" else ecol)
            pat = re.compile(where + r".*?" + re.escape(emsg))
            if r.returncode != 2:
                ok, why = False, "exit %d, expected 2" % r.returncode
            elif not any(pat.search(line) for line in err.splitlines()):
                ok, why = False, "no line like '%s:%s:%s: error: ...%s'" % (
                    shown, eline, ecol, emsg)
        if ok:
            print("PASS %s" % c.rel)
            npass += 1
        else:
            print("FAIL %s: %s" % (c.rel, why))
            lines = err.splitlines()
            for line in lines if verbose else lines[:6]:
                print("    | " + line)
            nfail += 1
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("schema", "c"), default="schema")
    ap.add_argument("--arl-batch", metavar="PATH", help="the binary (--mode c)")
    ap.add_argument("--timeout", type=int, default=20, help="seconds per file (--mode c)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print all of stderr on failure")
    ap.add_argument("files", nargs="*", help="check only these files (default: the whole corpus)")
    args = ap.parse_args()
    cases = collect(args)
    if args.mode == "schema":
        return run_schema(cases)
    if not args.arl_batch:
        ap.error("--mode c needs --arl-batch PATH")
    return run_c(cases, args.arl_batch, args.timeout, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
