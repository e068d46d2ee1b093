"""JSON Schema validation of manifest documents, with errors a person can act on.

The schemas in ``schemas/`` are the single source of truth of the format. This module only maps the
validator's errors to ``FILE:LINE:COL: path: message`` and adds suggestions for misspelt keys.
Pure: no docker, git, network or clock.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from gitops.manifests.parse import Document, JsonPath, ManifestError, format_path

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
KIND_SCHEMAS = {"Project": "project", "Host": "host", "Service": "service", "Network": "network",
                "Volume": "volume", "Registry": "registry"}
API_VERSION = "gitops/v1"


@cache
def _registry() -> Registry:
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        if "$id" in contents:
            resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


def _is_integer(checker: Any, instance: Any) -> bool:
    # JSON Schema counts 2.0 as an integer; here `replicas: 2.0` or `1e2` is a mistake (the model
    # would get a float where Docker and range() need an int), so only ints are integers.
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer))


def _inlined(schema: Any, resolver: Any, depth: int = 0) -> Any:
    """``schema`` with every $ref replaced by what it refers to. jsonschema resolves a $ref on every use, which
    was half the time of validating 200 services; our schemas are not recursive, so each is resolved once."""
    if depth > 32:
        raise ValueError("schemas/ refer to each other too deeply (a cycle?)")
    if isinstance(schema, list):
        return [_inlined(item, resolver, depth) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _inlined(v, resolver, depth) for k, v in schema.items() if k not in ("$ref", "$defs")}
    if "$ref" in schema:
        found = resolver.lookup(schema["$ref"])
        target = _inlined(found.contents, found.resolver, depth + 1)
        out = {**target, **out}  # the referring schema's own words (a description) win
    return out


def _validator(name: str) -> Any:
    schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return _Validator(_inlined(schema, _registry().resolver(base_uri=schema["$id"])), registry=_registry())


@cache
def validator_for(kind: str) -> Any:
    return _validator(KIND_SCHEMAS[kind])


@cache
def _compose_validator() -> Any:
    return _validator("compose")


def validate_compose(doc: Document) -> list[ManifestError]:
    """Errors of one compose file against the part of the Compose Specification gitops maps
    (schemas/compose.json), each located, with the compose path."""
    out: list[ManifestError] = []
    for error in _compose_validator().iter_errors(doc.data):
        out.extend(_errors_for(doc, error))
    return sorted(set(out))


def _known_properties(error: ValidationError) -> list[str]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    props = schema.get("properties", {})
    return sorted(props) if isinstance(props, dict) else []


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(error: ValidationError) -> str:
    """A shorter, clearer message than jsonschema's default for the common validators."""
    validator = error.validator
    if validator == "enum":
        return f"{_short(error.instance)} is not one of {list(error.validator_value)}"
    if validator == "const":
        return f"must be {error.validator_value!r}, not {_short(error.instance)}"
    if validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"expected {expected}, got {type_name(error.instance)} {_short(error.instance)}"
    if validator == "pattern":
        hint = error.schema.get("description") if isinstance(error.schema, dict) else None
        if hint:
            return f"{_short(error.instance)} is not valid: {hint}"
        return f"{_short(error.instance)} does not match {error.validator_value}"
    if validator == "required":
        return error.message
    return error.message


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _errors_for(doc: Document, error: ValidationError) -> list[ManifestError]:
    path: JsonPath = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = _known_properties(error)
        out = []
        for key in sorted(set(error.instance) - set(known)):
            prefix = format_path((*path, key))
            hint = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            text = f"{prefix}: unknown field '{key}'"
            text += f"; did you mean '{hint[0]}'?" if hint else f" (allowed: {', '.join(known)})"
            out.append(doc.error((*path, key), text, key=True))
        return out
    if error.validator in ("anyOf", "oneOf") and error.context:
        # Report the branch whose type fits the value (a list for a list), not "is not valid under any
        # of the given schemas"; when no branch's type fits, say which types would.
        branches: dict[int, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
        fitting = [errs for errs in branches.values()
                   if not any(e.validator in ("type", "const") and not e.relative_path for e in errs)]
        if len(fitting) == 1:
            return [m for sub in fitting[0] for m in _errors_for(doc, sub)]
        if not fitting:
            types = _branch_types(error)
            if types:
                return [doc.error(path, f"{format_path(path)}: expected {' or '.join(types)}, got "
                                  f"{type_name(error.instance)} {_short(error.instance)}")]
        if error.validator == "oneOf" and isinstance(error.instance, dict):
            return [doc.error(path, f"{format_path(path)}: set exactly one of "
                              f"{', '.join(sorted(_one_of_keys(error)))}")]
        deepest = best_match(error.context)
        if deepest is not None and deepest.validator != "not":
            return _errors_for(doc, deepest)
    prefix = format_path(path)
    message = _describe(error)
    return [doc.error(path, f"{prefix}: {message}" if prefix else message)]


def _branch_types(error: ValidationError) -> list[str]:
    out: list[str] = []
    for branch in error.validator_value:
        if not isinstance(branch, dict):
            continue
        if "$ref" in branch and "type" not in branch:
            # anyOf with references only occurs in the Service schema (or refers to it absolutely)
            resolved = _registry().resolver(base_uri="urn:gitops:v1:service").lookup(branch["$ref"]).contents
            branch = resolved if isinstance(resolved, dict) else {}
        kind = branch.get("type")
        names: list[str] = kind if isinstance(kind, list) else [kind] if kind else []
        out += [{"object": "mapping", "array": "list"}.get(n, n) for n in names]
    return list(dict.fromkeys(out))


def _one_of_keys(error: ValidationError) -> set[str]:
    keys: set[str] = set()
    for branch in error.validator_value:
        keys.update(branch.get("required", []))
    return keys


def validate_document(doc: Document) -> list[ManifestError]:
    """Schema errors of one document, all of them, each located."""
    data = doc.data
    api = data.get("apiVersion")
    if api != API_VERSION:
        if api is None:
            return [doc.error((), f"not a gitops manifest: apiVersion is missing (expected '{API_VERSION}')")]
        return [doc.error(("apiVersion",), f"apiVersion: {_short(api)} is not supported; use '{API_VERSION}'")]
    kind = data.get("kind")
    if kind not in KIND_SCHEMAS:
        hint = difflib.get_close_matches(str(kind), list(KIND_SCHEMAS), n=1, cutoff=0.6)
        text = f"kind: {_short(kind)} is not one of {list(KIND_SCHEMAS)}"
        return [doc.error(("kind",), text + (f"; did you mean '{hint[0]}'?" if hint else ""))]
    out: list[ManifestError] = []
    for error in validator_for(kind).iter_errors(data):
        if kind == "Registry" and tuple(error.absolute_path)[:2] == ("spec", "password"):
            # a password typed in plain text must not travel on in errors (status, history, PR comments)
            out.append(doc.error(("spec", "password"), "spec.password: must be {secretFile: FILE}, a SOPS or age "
                                 "encrypted file; what is written here is not shown"))
            continue
        out.extend(_errors_for(doc, error))
    return sorted(set(out))


def validate_documents(docs: Iterable[Document]) -> tuple[list[Document], list[ManifestError]]:
    """Split documents into those valid against their schema and the errors of the others."""
    good: list[Document] = []
    errors: list[ManifestError] = []
    for doc in docs:
        found = validate_document(doc)
        if found:
            errors.extend(found)
        else:
            good.append(doc)
    return good, errors
