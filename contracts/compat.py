"""Backward-compatibility checks between two JSON Schemas of one contract.

`incompatibilities(old, new)` lists the changes that break consumers of a message whose
schema went from `old` to `new` at the SAME schema_version: events already stored or in
flight were written against `old` and must still be accepted, and consumers built against
`old` must still find what they read. Reported:

- a property removed;
- a property newly required (including a new property that is required);
- a type changed or narrowed (a type, or `null`, no longer accepted; `integer` -> `number`
  is a widening and is allowed);
- an enum value removed, or an enum / const added where any value was accepted;
- `additionalProperties` tightened;
- a constraint tightened: minimum / exclusiveMinimum raised, maximum / exclusiveMaximum
  lowered, minLength / minItems raised, maxLength / maxItems lowered, pattern or format
  changed or added, multipleOf changed to one that old values need not satisfy,
  uniqueItems added.

Adding an optional property is compatible. Local references (`#/$defs/...`, any local JSON
pointer) are resolved; recursion through a reference cycle stops at the second visit.

`validation_errors(schema, instance)` is a small validator for the subset of JSON Schema
pydantic emits, so tests can check sample payloads against published schema files without
a third-party validator.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any

Schema = dict[str, Any]

_NUMERIC_TYPES = {"integer", "number"}
_ALL_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")


# --- references ---------------------------------------------------------------------------
def _pointer(root: Schema, ref: str) -> Any:
    if not ref.startswith("#"):
        raise ValueError(f"only local $ref is supported, got {ref!r}")
    node: Any = root
    for part in [p for p in ref[1:].split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"unresolvable $ref {ref!r}") from exc
    return node


def resolve(schema: Any, root: Schema, _depth: int = 0) -> Any:
    """`schema` with its local `$ref` replaced by the target (sibling keywords kept) and
    `allOf` branches merged in (pydantic uses `allOf: [{$ref}]` for annotated references)."""
    if not isinstance(schema, dict):
        return schema
    if _depth > 64:
        raise ValueError("$ref chain too deep (cycle?)")
    if "$ref" in schema:
        target = resolve(_pointer(root, schema["$ref"]), root, _depth + 1)
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **siblings}
    if "allOf" in schema:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for branch in schema["allOf"]:
            branch = resolve(branch, root, _depth + 1)
            for k, v in branch.items():
                if k == "required":
                    merged["required"] = sorted(set(merged.get("required", ())) | set(v))
                elif k == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **v}
                else:
                    merged.setdefault(k, v)
        schema = merged
    return schema


# --- variants: a schema as a union of plain alternatives --------------------------------
def _variants(schema: Any, root: Schema) -> list[Schema]:
    """Flatten anyOf / oneOf into plain alternatives, each without anyOf/oneOf."""
    if schema is True or schema == {}:
        return [{}]
    if schema is False:
        return []
    schema = resolve(schema, root)
    branches = schema.get("anyOf") or schema.get("oneOf")
    if not branches:
        return [schema]
    shared = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf", "default", "title", "description")}
    out: list[Schema] = []
    for b in branches:
        for v in _variants(b, root):
            out.append({**shared, **v})
    return out


def _types(v: Schema) -> set[str]:
    t = v.get("type")
    if isinstance(t, str):
        return {t}
    if isinstance(t, list):
        return set(t)
    values = v["enum"] if "enum" in v else [v["const"]] if "const" in v else None
    if values is not None:
        return {_json_type(x) for x in values}
    if "properties" in v or "additionalProperties" in v or "required" in v:
        return {"object"}
    if "items" in v or "prefixItems" in v:
        return {"array"}
    return set(_ALL_TYPES)  # unconstrained


def _json_type(x: Any) -> str:
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "boolean"
    if isinstance(x, int):
        return "integer"
    if isinstance(x, float):
        return "integer" if x.is_integer() else "number"
    if isinstance(x, str):
        return "string"
    if isinstance(x, list):
        return "array"
    return "object"


def _accepts_type(types: set[str], t: str) -> bool:
    return t in types or (t == "integer" and "number" in types)


def _label(path: str) -> str:
    return path or "<root>"


# --- comparison -----------------------------------------------------------------------------
def incompatibilities(old_schema: Schema, new_schema: Schema) -> list[str]:
    """Backward-incompatible changes from `old_schema` to `new_schema`, one line each."""
    out: list[str] = []
    _compare(old_schema, new_schema, "", old_schema, new_schema, out, frozenset())
    return list(dict.fromkeys(out))


Seen = frozenset[tuple[object, object]]


def _ref_key(schema: Any) -> object:
    return schema["$ref"] if isinstance(schema, dict) and "$ref" in schema else id(schema)


def _compare(old: Any, new: Any, path: str, old_root: Schema, new_root: Schema, out: list[str],
             seen: Seen) -> None:
    key = (_ref_key(old), _ref_key(new))
    if key in seen:
        return  # a reference cycle: this pair is already being compared further up
    seen = seen | {key}
    old_vs, new_vs = _variants(old, old_root), _variants(new, new_root)
    for ov in old_vs:
        lost: list[str] = []
        for t in sorted(_types(ov)):
            candidates = [nv for nv in new_vs if _accepts_type(_types(nv), t)]
            if not candidates:
                lost.append(t)
                continue
            # The best match: a variant of the same type if there is one, else the widest; of
            # objects, the one with the same tag (a discriminated union's `kind`), if any.
            same = [nv for nv in candidates if t in _types(nv)]
            tagged = [nv for nv in same if _tags(ov, old_root) and _tags(nv, new_root) == _tags(ov, old_root)]
            _compare_plain(ov, (tagged or same or candidates)[0], t, path, old_root, new_root, out, seen)
        if lost:
            now = sorted(set().union(*(_types(nv) for nv in new_vs))) if new_vs else []
            out.append(f"{_label(path)}: type changed/narrowed: {lost} no longer accepted (now {now})")


def _tags(v: Schema, root: Schema) -> dict[str, Any]:
    """The properties an object variant fixes to one value (`const`, or an `enum` of one): the
    tag that tells a discriminated union's alternatives apart."""
    tags = {}
    for name, prop in (v.get("properties") or {}).items():
        prop = resolve(prop, root)
        if isinstance(prop, dict) and "const" in prop:
            tags[name] = prop["const"]
        elif isinstance(prop, dict) and isinstance(prop.get("enum"), list) and len(prop["enum"]) == 1:
            tags[name] = prop["enum"][0]
    return tags


def _lower(v: Schema) -> tuple[float, bool] | None:
    """The tightest lower bound as (value, exclusive), or None."""
    bounds = []
    if _is_num(v.get("minimum")):
        bounds.append((v["minimum"], v.get("exclusiveMinimum") is True))  # draft-4 boolean flag
    if _is_num(v.get("exclusiveMinimum")):
        bounds.append((v["exclusiveMinimum"], True))
    return max(bounds, default=None)  # the larger value is tighter; at a tie, the exclusive one


def _upper(v: Schema) -> tuple[float, bool] | None:
    """The tightest upper bound as (value, exclusive), or None."""
    bounds = []
    if _is_num(v.get("maximum")):
        bounds.append((v["maximum"], v.get("exclusiveMaximum") is True))
    if _is_num(v.get("exclusiveMaximum")):
        bounds.append((v["exclusiveMaximum"], True))
    return min(bounds, key=lambda b: (b[0], not b[1]), default=None)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _tighter_lower(old: tuple[float, bool] | None, new: tuple[float, bool] | None) -> bool:
    return new is not None and (old is None or new[0] > old[0] or (new[0] == old[0] and new[1] and not old[1]))


def _tighter_upper(old: tuple[float, bool] | None, new: tuple[float, bool] | None) -> bool:
    return new is not None and (old is None or new[0] < old[0] or (new[0] == old[0] and new[1] and not old[1]))


def _values(v: Schema) -> list[Any] | None:
    return list(v["enum"]) if "enum" in v else [v["const"]] if "const" in v else None


def _compare_plain(ov: Schema, nv: Schema, t: str, path: str, old_root: Schema, new_root: Schema,
                   out: list[str], seen: Seen) -> None:
    """Compare two alternatives that both accept JSON type `t`, for values of type `t`."""
    where = _label(path)

    def of_type(x: Any) -> bool:
        return _json_type(x) == t or (t == "number" and _json_type(x) == "integer")

    old_values, new_values = _values(ov), _values(nv)
    if new_values is not None:
        if old_values is None:
            out.append(f"{where}: enum/const added: only {[x for x in new_values if of_type(x)]!r} accepted now")
        else:
            for x in old_values:
                if of_type(x) and x not in new_values:
                    out.append(f"{where}: enum value removed: {x!r}")

    if t in _NUMERIC_TYPES:
        lo_o, lo_n = _lower(ov), _lower(nv)
        if _tighter_lower(lo_o, lo_n):
            out.append(f"{where}: minimum raised: {_fmt_bound(lo_o, '>')} -> {_fmt_bound(lo_n, '>')}")
        hi_o, hi_n = _upper(ov), _upper(nv)
        if _tighter_upper(hi_o, hi_n):
            out.append(f"{where}: maximum lowered: {_fmt_bound(hi_o, '<')} -> {_fmt_bound(hi_n, '<')}")
        m_o, m_n = ov.get("multipleOf"), nv.get("multipleOf")
        if m_n is not None and (m_o is None or not _is_multiple(m_o, m_n)):
            out.append(f"{where}: multipleOf tightened: {m_o!r} -> {m_n!r}")

    if t == "string":
        if nv.get("minLength", 0) > ov.get("minLength", 0):
            out.append(f"{where}: minLength raised: {ov.get('minLength', 0)} -> {nv['minLength']}")
        if "maxLength" in nv and nv["maxLength"] < ov.get("maxLength", math.inf):
            out.append(f"{where}: maxLength lowered: {ov.get('maxLength', 'unbounded')} -> {nv['maxLength']}")
        if "pattern" in nv and nv["pattern"] != ov.get("pattern"):
            out.append(f"{where}: pattern changed: {ov.get('pattern')!r} -> {nv['pattern']!r}")
        if "format" in nv and nv["format"] != ov.get("format"):
            out.append(f"{where}: format changed: {ov.get('format')!r} -> {nv['format']!r}")

    if t == "array":
        if nv.get("minItems", 0) > ov.get("minItems", 0):
            out.append(f"{where}: minItems raised: {ov.get('minItems', 0)} -> {nv['minItems']}")
        if "maxItems" in nv and nv["maxItems"] < ov.get("maxItems", math.inf):
            out.append(f"{where}: maxItems lowered: {ov.get('maxItems', 'unbounded')} -> {nv['maxItems']}")
        if nv.get("uniqueItems") and not ov.get("uniqueItems"):
            out.append(f"{where}: uniqueItems added")
        if "items" in nv:
            _compare(ov.get("items", {}), nv["items"], f"{path}[]", old_root, new_root, out, seen)

    if t == "object":
        _compare_object(ov, nv, path, old_root, new_root, out, seen)


def _permissive(x: Any) -> bool:
    return x is True or x == {}


def _compare_object(ov: Schema, nv: Schema, path: str, old_root: Schema, new_root: Schema, out: list[str],
                    seen: Seen) -> None:
    where = _label(path)
    old_props: Schema = ov.get("properties", {})
    new_props: Schema = nv.get("properties", {})
    old_req, new_req = set(ov.get("required", ())), set(nv.get("required", ()))
    old_extra = ov.get("additionalProperties", True)
    new_extra = nv.get("additionalProperties", True)

    for name in old_props:
        sub = f"{path}.{name}" if path else name
        if name not in new_props:
            out.append(f"{sub}: property removed")
            continue
        _compare(old_props[name], new_props[name], sub, old_root, new_root, out, seen)

    for name in sorted(new_req - old_req):
        sub = f"{path}.{name}" if path else name
        out.append(f"{sub}: property newly required")
    # A new optional property is compatible: old messages simply do not carry it.

    if new_extra is False and old_extra is not False:
        out.append(f"{where}: additionalProperties tightened: {_fmt_extra(old_extra)} -> false")
    elif isinstance(new_extra, dict) and not _permissive(new_extra):
        if _permissive(old_extra):
            out.append(f"{where}: additionalProperties tightened: true -> schema")
        elif isinstance(old_extra, dict):
            _compare(old_extra, new_extra, f"{path}.*" if path else "*", old_root, new_root, out, seen)


def _fmt_extra(x: Any) -> str:
    return "true" if _permissive(x) else "schema" if isinstance(x, dict) else str(x).lower()


def _fmt_bound(b: tuple[float, bool] | None, op: str) -> str:
    if b is None:
        return "unbounded"
    return f"{op} {b[0]}" if b[1] else f"{op}= {b[0]}"


def _is_multiple(value: float, step: float) -> bool:
    """True if `value` is a whole multiple of `step`."""
    q = value / step
    return abs(q - round(q)) < 1e-9


# --- a small validator --------------------------------------------------------------------
def validation_errors(schema: Schema, instance: Any, *, root: Schema | None = None, path: str = "") -> list[str]:
    """Errors validating `instance` against `schema` (the keywords pydantic emits, with local
    `$ref`, anyOf/oneOf/allOf, formats date, date-time and uuid). Empty list: valid."""
    root = schema if root is None else root
    if schema is True:
        return []
    if schema is False:
        return [f"{_label(path)}: no value is allowed"]
    schema = resolve(schema, root)
    where = _label(path)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            rest = {k: v for k, v in schema.items() if k != key}
            branch_errors = [validation_errors({**rest, **b} if isinstance(b, dict) else b, instance,
                                               root=root, path=path) for b in schema[key]]
            ok = sum(1 for e in branch_errors if not e)
            if ok == 0:
                return [f"{where}: matches no alternative of {key} ({'; '.join(e[0] for e in branch_errors)})"]
            if key == "oneOf" and ok > 1:
                return [f"{where}: matches {ok} alternatives of oneOf"]
            return []
    errors: list[str] = []
    types = schema.get("type")
    if types is not None:
        allowed = {types} if isinstance(types, str) else set(types)
        actual = _json_type(instance)
        if not _accepts_type(allowed, actual):
            return [f"{where}: expected {sorted(allowed)}, got {actual} ({instance!r})"]
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{where}: {instance!r} not one of {schema['enum']!r}")
    if "const" in schema and instance != schema["const"]:
        errors.append(f"{where}: {instance!r} is not {schema['const']!r}")
    if isinstance(instance, (int, float)) and not isinstance(instance, bool):
        lo = _lower(schema)
        if lo is not None and (instance < lo[0] or (lo[1] and instance == lo[0])):
            errors.append(f"{where}: {instance} below {_fmt_bound(lo, '>')}")
        hi = _upper(schema)
        if hi is not None and (instance > hi[0] or (hi[1] and instance == hi[0])):
            errors.append(f"{where}: {instance} above {_fmt_bound(hi, '<')}")
        if "multipleOf" in schema and not _is_multiple(instance, schema["multipleOf"]):
            errors.append(f"{where}: {instance} is not a multiple of {schema['multipleOf']}")
    if isinstance(instance, str):
        if len(instance) < schema.get("minLength", 0):
            errors.append(f"{where}: shorter than {schema['minLength']}")
        if len(instance) > schema.get("maxLength", math.inf):
            errors.append(f"{where}: longer than {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            errors.append(f"{where}: {instance!r} does not match {schema['pattern']!r}")
        fmt = schema.get("format")
        if fmt and not _format_ok(fmt, instance):
            errors.append(f"{where}: {instance!r} is not a valid {fmt}")
    if isinstance(instance, list):
        if len(instance) < schema.get("minItems", 0):
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        if len(instance) > schema.get("maxItems", math.inf):
            errors.append(f"{where}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(instance):
                errors += validation_errors(schema["items"], item, root=root, path=f"{path}[{i}]")
    if isinstance(instance, dict):
        props: Schema = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in instance:
                errors.append(f"{where}: missing required property {name!r}")
        extra = schema.get("additionalProperties", True)
        for name, value in instance.items():
            sub = f"{path}.{name}" if path else name
            if name in props:
                errors += validation_errors(props[name], value, root=root, path=sub)
            elif extra is False:
                errors.append(f"{where}: additional property {name!r} not allowed")
            elif isinstance(extra, dict):
                errors += validation_errors(extra, value, root=root, path=sub)
    return errors


def _format_ok(fmt: str, value: str) -> bool:
    try:
        if fmt == "date":
            date.fromisoformat(value)
            return re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is not None
        if fmt == "date-time":
            return datetime.fromisoformat(value.replace("Z", "+00:00")) is not None and "T" in value.upper()
        if fmt == "uuid":
            return re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", value) is not None
    except ValueError:
        return False
    return True  # formats we do not check
