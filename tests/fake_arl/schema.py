"""CRD loading and openAPIV3Schema handling, the way kube-apiserver treats custom resources.

For every write to a custom resource the real API server:
  1. drops fields the structural schema does not declare ("pruning"; with
     ?fieldValidation=Strict it rejects them with 400 instead, with the default
     Warn it answers with a `Warning:` header per field),
  2. drops nulls in fields that are not `nullable`,
  3. applies `default:` values,
  4. validates types, formats, bounds, patterns, enums, required fields and
     list-map/set uniqueness (422 Invalid, all errors in one message),
  5. evaluates the CRD's `x-kubernetes-validations` CEL rules.
This module does the same for the subset of the schema language that the three
ARL CRDs use (checked when the CRDs are loaded: see KNOWN_KEYWORDS). The one CEL
rule in them (the WarmPool name rule) is recognised by its text and evaluated as
a regular expression; any other rule is ignored with a note on stderr.

The root `metadata` is `type: object` without properties in every CRD, but the
API server decodes it as ObjectMeta; ObjectMeta handling lives in api.py.
Note the faithful gotcha: a nested `metadata: {type: object}` (e.g.
WarmPool spec.template.metadata) has no properties, so all of its content is
pruned, exactly as on a real cluster.
"""

import datetime
import json
import os
import re
import sys

# Schema keywords the validator understands. Loading a CRD with another keyword
# prints a warning, so a future CRD change cannot silently weaken validation.
KNOWN_KEYWORDS = {
    "type", "properties", "required", "items", "additionalProperties", "format",
    "anyOf", "x-kubernetes-int-or-string", "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "default", "pattern",
    "maxLength", "minLength", "minimum", "maximum", "enum", "x-kubernetes-validations",
    "description", "nullable", "x-kubernetes-preserve-unknown-fields", "minItems",
    "maxItems", "exclusiveMinimum", "exclusiveMaximum", "x-kubernetes-embedded-resource",
}

WARMPOOL_NAME_RULE = "self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')"


class FieldError:
    """One entry of a field.ErrorList: rendered like Kubernetes does."""

    def __init__(self, path, kind, value=None, detail="", show_value=True):
        self.path = path or "<nil>"
        self.kind = kind          # "Required value", "Invalid value", "Unsupported value", ...
        self.value = value
        self.detail = detail
        self.show_value = show_value

    def __str__(self):
        if self.kind in ("Required value", "Forbidden") or not self.show_value:
            s = "%s: %s" % (self.path, self.kind)
        else:
            s = "%s: %s: %s" % (self.path, self.kind, go_value(self.value))
        if self.detail:
            s += ": " + self.detail
        return s

    def cause(self):
        reason = {
            "Required value": "FieldValueRequired",
            "Unsupported value": "FieldValueNotSupported",
            "Duplicate value": "FieldValueDuplicate",
            "Forbidden": "FieldValueForbidden",
            "Too long": "FieldValueTooLong",
        }.get(self.kind, "FieldValueInvalid")
        return {"reason": reason, "message": str(self).split(": ", 1)[-1], "field": self.path}


def go_value(v):
    """Approximately how Go's %#v / field.Invalid prints a value."""
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(v, separators=(",", ":"), sort_keys=True)


def json_type(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _is_datetime(s):
    if not _RFC3339.match(s):
        return False
    try:
        datetime.datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00")
                                        .replace("t", "T").replace(" ", "T"))
    except ValueError:
        return False
    return True


_regex_cache = {}


def _regex(p):
    r = _regex_cache.get(p)
    if r is None:
        # The patterns in the CRDs are RE2; the ones used here are also valid Python.
        r = _regex_cache[p] = re.compile(p)
    return r


def _join(path, key):
    return key if not path else path + "." + key


class CRD:
    """One served CustomResourceDefinition (the first served version)."""

    def __init__(self, doc, source=""):
        spec = doc["spec"]
        names = spec["names"]
        self.doc = doc
        self.source = source
        self.group = spec["group"]
        self.kind = names["kind"]
        self.list_kind = names.get("listKind", self.kind + "List")
        self.plural = names["plural"]
        self.singular = names.get("singular", self.kind.lower())
        self.short_names = names.get("shortNames", [])
        self.categories = names.get("categories", [])
        self.namespaced = spec.get("scope", "Namespaced") == "Namespaced"
        version = next(v for v in spec["versions"] if v.get("served", True))
        self.version = version["name"]
        self.api_version = "%s/%s" % (self.group, self.version)
        self.schema = version["schema"]["openAPIV3Schema"]
        self.printer_columns = version.get("additionalPrinterColumns", [])
        subres = version.get("subresources") or {}
        self.has_status = "status" in subres
        self.root_rules = self.schema.get("x-kubernetes-validations", [])
        self._check_keywords(self.schema, "")

    def _check_keywords(self, s, path):
        if not isinstance(s, dict):
            return
        for k in s:
            if k not in KNOWN_KEYWORDS:
                sys.stderr.write("fake-arl: %s: schema keyword %r at %s is not implemented\n"
                                 % (self.plural, k, path or "<root>"))
        for k, v in (s.get("properties") or {}).items():
            self._check_keywords(v, _join(path, k))
        if isinstance(s.get("items"), dict):
            self._check_keywords(s["items"], path + "[]")
        if isinstance(s.get("additionalProperties"), dict):
            self._check_keywords(s["additionalProperties"], path + "{}")
        for sub in s.get("anyOf", []):
            self._check_keywords(sub, path)
        for rule in s.get("x-kubernetes-validations", []):
            if path == "" and rule.get("rule") == WARMPOOL_NAME_RULE:
                continue
            sys.stderr.write("fake-arl: %s: CEL rule %r at %s is not evaluated\n"
                             % (self.plural, rule.get("rule"), path or "<root>"))

    def sub_schema(self, name):
        return (self.schema.get("properties") or {}).get(name)

    # ---- the write pipeline -------------------------------------------------

    def prune_and_default(self, obj, unknown, parts=("spec", "status")):
        """Prunes/defaults the top-level fields in `parts` of obj in place.
        Unknown top-level fields are removed too. Paths of removed fields go to `unknown`."""
        props = self.schema.get("properties") or {}
        for key in list(obj.keys()):
            if key in ("apiVersion", "kind", "metadata"):
                continue
            if key not in props:
                unknown.append(key)
                del obj[key]
                continue
            if obj[key] is None and not props[key].get("nullable"):
                del obj[key]
                continue
            if key in parts:
                obj[key] = prune(obj[key], props[key], key, unknown)
                apply_defaults(obj[key], props[key])

    def validate(self, obj, parts=("spec", "status")):
        """Returns a list of FieldError for the top-level fields in `parts`."""
        errs = []
        props = self.schema.get("properties") or {}
        for req in self.schema.get("required", []):
            if req not in obj and req in parts:
                errs.append(FieldError(req, "Required value"))
        for key in parts:
            if key in obj and key in props:
                validate(obj[key], props[key], key, errs)
        for rule in self.root_rules:
            if rule.get("rule") == WARMPOOL_NAME_RULE:
                name = (obj.get("metadata") or {}).get("name", "")
                if not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", name or ""):
                    errs.append(FieldError("<nil>", "Invalid value", "object",
                                           rule.get("message", "failed rule: " + rule["rule"])))
        return errs


def prune(value, schema, path, unknown):
    """Returns value with undeclared fields and non-nullable nulls removed."""
    if schema is None:
        return value
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return value
    if isinstance(value, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        out = {}
        for k, v in value.items():
            sub = None
            if props is not None and k in props:
                sub = props[k]
            elif isinstance(addl, dict):
                sub = addl
            elif addl is True:
                out[k] = v
                continue
            else:
                unknown.append(_join(path, k))
                continue
            if v is None and not sub.get("nullable"):
                continue
            out[k] = prune(v, sub, _join(path, k), unknown)
        return out
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            return [prune(v, items, "%s[%d]" % (path, i), unknown) for i, v in enumerate(value)]
    return value


def apply_defaults(value, schema):
    """Structural defaulting: missing properties with a `default` get it (in place)."""
    if schema is None:
        return
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for k, sub in props.items():
            if k not in value and "default" in sub:
                value[k] = json.loads(json.dumps(sub["default"]))
            if k in value:
                apply_defaults(value[k], sub)
        addl = schema.get("additionalProperties")
        if isinstance(addl, dict):
            for k, v in value.items():
                if k not in props:
                    apply_defaults(v, addl)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for v in value:
            apply_defaults(v, schema["items"])


def _type_ok(value, t):
    jt = json_type(value)
    if t == "number":
        return jt in ("integer", "number")
    if t == "integer" and jt == "number" and float(value).is_integer():
        return True
    return jt == t


def validate(value, schema, path, errs):
    """Appends FieldErrors for value against schema (kube-openapi style messages)."""
    if schema is None:
        return
    int_or_string = schema.get("x-kubernetes-int-or-string")
    t = schema.get("type")
    if value is None:
        if not schema.get("nullable"):
            errs.append(FieldError(path, "Invalid value", "null",
                                   "%s in body must be of type %s: \"null\"" % (path, t or "object")))
        return
    if int_or_string:
        if json_type(value) not in ("integer", "string"):
            errs.append(FieldError(path, "Invalid value", json_type(value),
                                   "%s in body must be of type integer,string: \"%s\""
                                   % (path, json_type(value))))
            return
    elif t and not _type_ok(value, t):
        errs.append(FieldError(path, "Invalid value", json_type(value),
                               "%s in body must be of type %s: \"%s\"" % (path, t, json_type(value))))
        return
    if "anyOf" in schema and not int_or_string:
        if not any(_matches(value, sub) for sub in schema["anyOf"]):
            errs.append(FieldError(path, "Invalid value", value, "must validate at least one schema (anyOf)"))
    fmt = schema.get("format")
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        if fmt == "int32" and not (-2**31 <= value < 2**31):
            errs.append(FieldError(path, "Invalid value", value,
                                   "%s in body must be of type int32: \"%d\"" % (path, value)))
        if fmt == "int64" and not (-2**63 <= value < 2**63):
            errs.append(FieldError(path, "Invalid value", value,
                                   "%s in body must be of type int64: \"%d\"" % (path, value)))
    elif isinstance(value, str) and fmt == "date-time" and not _is_datetime(value):
        errs.append(FieldError(path, "Invalid value", value,
                               "%s in body must be of type date-time: %s" % (path, json.dumps(value))))
    if "enum" in schema and value not in schema["enum"]:
        errs.append(FieldError(path, "Unsupported value", value,
                               "supported values: " + ", ".join(go_value(e) for e in schema["enum"])))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errs.append(FieldError(path, "Invalid value", value,
                                   "%s in body should be greater than or equal to %s" % (path, schema["minimum"])))
        if "maximum" in schema and value > schema["maximum"]:
            errs.append(FieldError(path, "Invalid value", value,
                                   "%s in body should be less than or equal to %s" % (path, schema["maximum"])))
    if isinstance(value, str):
        n = len(value)  # Kubernetes counts runes, as Python counts code points
        if "maxLength" in schema and n > schema["maxLength"]:
            errs.append(FieldError(path, "Too long", value,
                                   "may not be longer than %d" % schema["maxLength"], show_value=False))
        if "minLength" in schema and n < schema["minLength"]:
            errs.append(FieldError(path, "Invalid value", value,
                                   "%s in body should be at least %d chars long" % (path, schema["minLength"])))
        if "pattern" in schema and not _regex(schema["pattern"]).search(value):
            errs.append(FieldError(path, "Invalid value", value,
                                   "%s in body should match '%s'" % (path, schema["pattern"])))
    if isinstance(value, dict):
        for req in schema.get("required", []):
            if req not in value:
                errs.append(FieldError(_join(path, req), "Required value"))
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                validate(v, props[k], _join(path, k), errs)
            elif isinstance(addl, dict):
                validate(v, addl, _join(path, k), errs)
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errs.append(FieldError(path, "Too many", len(value),
                                   "must have at most %d items" % schema["maxItems"], show_value=False))
        if "minItems" in schema and len(value) < schema["minItems"]:
            errs.append(FieldError(path, "Invalid value", len(value),
                                   "%s in body should have at least %d items" % (path, schema["minItems"])))
        items = schema.get("items")
        for i, v in enumerate(value):
            validate(v, items, "%s[%d]" % (path, i), errs)
        lt = schema.get("x-kubernetes-list-type")
        if lt == "set":
            seen = []
            for i, v in enumerate(value):
                if v in seen:
                    errs.append(FieldError("%s[%d]" % (path, i), "Duplicate value", v))
                seen.append(v)
        elif lt == "map":
            keys = schema.get("x-kubernetes-list-map-keys", [])
            seen = []
            for i, v in enumerate(value):
                if not isinstance(v, dict):
                    continue
                kv = {k: v.get(k) for k in keys}
                if kv in seen:
                    errs.append(FieldError("%s[%d]" % (path, i), "Duplicate value", kv))
                seen.append(kv)


def _matches(value, schema):
    errs = []
    validate(value, schema, "x", errs)
    return not errs


def load_crds(crd_dir):
    """Reads arl.infra.io_*.yaml from crd_dir. PyYAML (Debian python3-yaml) is used
    for this and for nothing else."""
    try:
        import yaml  # noqa: only for the CRD files
    except ImportError:
        raise SystemExit("fake-arl: PyYAML is needed to read the CRDs: apt-get install python3-yaml")
    crds = {}
    names = sorted(f for f in os.listdir(crd_dir) if f.endswith(".yaml") and f.startswith("arl.infra.io_"))
    if not names:
        raise SystemExit("fake-arl: no arl.infra.io_*.yaml CRDs in %s" % crd_dir)
    for f in names:
        path = os.path.join(crd_dir, f)
        with open(path, encoding="utf-8") as fh:
            for doc in yaml.safe_load_all(fh):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    crd = CRD(doc, path)
                    crds[crd.plural] = crd
    return crds
