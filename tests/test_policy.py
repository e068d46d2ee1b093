"""The security policy's allowlists (gitops/manifests/policy.py), and a decision for every field of the format."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gitops.core.model import PolicyException
from gitops.manifests.load import load_repo
from gitops.manifests.policy import (
    ALLOWABLE_RULES,
    FIELD_POLICY,
    POLICY_RULES,
    field_decision,
    local_volume_options_safe,
    rules_in_table,
    security_opt_rule,
)
from gitops.manifests.schema import KIND_SCHEMAS, SCHEMA_DIR, _registry
from tests.conftest import PROJECT, service


def _walk(schema: Any, path: str, out: set[str], resolver: Any) -> None:
    """Every property path below ``schema``: '.name' for a field, '[]' for an item, '.*' for a map value."""
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        resolved = resolver.lookup(schema["$ref"])
        _walk(resolved.contents, path, out, resolved.resolver)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            _walk(sub, path, out, resolver)
    for name, sub in (schema.get("properties") or {}).items():
        out.add(f"{path}.{name}")
        _walk(sub, f"{path}.{name}", out, resolver)
    for key, suffix in (("items", "[]"), ("additionalProperties", ".*")):
        if isinstance(schema.get(key), dict):
            _walk(schema[key], path + suffix, out, resolver)


def schema_fields() -> set[str]:
    out: set[str] = set()
    for kind, name in KIND_SCHEMAS.items():
        schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8"))
        _walk(schema, kind, out, _registry().resolver(base_uri=schema["$id"]))
    return {f for f in out if f.split(".", 1)[1] not in ("apiVersion", "kind", "metadata")}


def missing_decisions() -> list[str]:
    return sorted(f for f in schema_fields() if field_decision(f) is None)


def test_every_schema_field_has_a_policy_decision() -> None:
    """A field added to schemas/ that reaches Docker fails here until FIELD_POLICY decides it."""
    assert len(schema_fields()) > 100  # the walk really reached the nested definitions
    assert missing_decisions() == []


def test_a_field_without_a_decision_is_found(monkeypatch) -> None:
    """The check above can fail: drop two decisions (one reached through Project defaults too)."""
    monkeypatch.delitem(FIELD_POLICY, "Service.spec.init")
    monkeypatch.delitem(FIELD_POLICY, "Service.spec.env.*.secretFile")
    assert missing_decisions() == ["Project.spec.defaults.init", "Service.spec.env.*.secretFile",
                                   "Service.spec.init"]


def test_every_decision_is_a_known_rule_or_a_reason() -> None:
    fields = schema_fields()
    for path, decision in FIELD_POLICY.items():
        if isinstance(decision, tuple):
            assert decision and set(decision) <= set(POLICY_RULES), (path, decision)
        else:
            assert decision.startswith("safe: ") and len(decision) > 10, (path, decision)
        # no entry for a field that no longer exists
        assert path.startswith("metadata.") or path in fields, path
    assert rules_in_table() == set(POLICY_RULES)  # and no rule without a field it decides


def test_the_schema_allows_exactly_the_allowable_rules() -> None:
    project = json.loads((SCHEMA_DIR / "project.json").read_text(encoding="utf-8"))
    enum = project["properties"]["spec"]["properties"]["policy"]["properties"]["allow"]["items"]["enum"]
    assert enum == list(ALLOWABLE_RULES)
    assert "host-path" not in enum  # allowed per folder, in allowHostPaths


@pytest.mark.parametrize("opt, rule", [
    ("no-new-privileges", None), ("no-new-privileges:true", None), ("no-new-privileges=false", None),
    ("no-new-privileges=maybe", "security-opt"),
    ("seccomp=unconfined", "seccomp-profile"), ("seccomp:unconfined", "seccomp-profile"),
    ('seccomp={"defaultAction":"SCMP_ACT_ALLOW"}', "seccomp-profile"),
    ('seccomp:{"defaultAction":"SCMP_ACT_ALLOW"}', "seccomp-profile"),
    ("apparmor=unconfined", "apparmor-profile"), ("apparmor=my-profile", "apparmor-profile"),
    ("label=disable", "selinux-label"), ("label:disable", "selinux-label"), ("disable", "selinux-label"),
    ("label=type:spc_t", "selinux-label"), ("label=level:s0:c100,c200", "selinux-label"),
    ("systempaths=unconfined", "security-opt"), ("writable-cgroups=true", "security-opt"),
    ("Seccomp=unconfined", "security-opt"), ("nonsense", "security-opt"),
])
def test_security_opt_allowlist(opt: str, rule: str | None) -> None:
    assert security_opt_rule(opt) == rule


@pytest.mark.parametrize("options, safe", [
    ({}, True),
    ({"type": "tmpfs", "device": "tmpfs", "o": "size=100m"}, True),
    ({"type": "tmpfs", "device": "tmpfs", "o": "size=64m,mode=1777,uid=1000,gid=1000,noexec,nosuid"}, True),
    ({"type": "tmpfs", "o": "size=50%"}, True),
    ({"type": "nfs", "o": "addr=10.0.0.1,rw,nfsvers=4", "device": ":/export"}, True),
    ({"type": "nfs4", "o": "addr=fd00::5", "device": ":/export/a"}, True),
    ({"type": "cifs", "o": "addr=10.0.0.9,username=app,vers=3.0", "device": "//files/share"}, True),
    ({"type": "none", "o": "bind", "device": "/srv/data"}, False),
    ({"o": "rw,bind"}, False),
    ({"device": "/dev/sdb1", "type": "ext4"}, False),
    ({"type": "none", "o": "rbind", "device": "."}, False),
    ({"type": "overlay", "o": "lowerdir=/etc:/root"}, False),
    ({"type": "proc"}, False), ({"type": "sysfs"}, False), ({"type": "devpts"}, False),
    ({"type": "tmpfs", "device": "/etc"}, False),
    ({"type": "tmpfs", "o": "size=1m,,bind"}, False),
    ({"type": "tmpfs", "size": "1m"}, False),  # keys outside type/device/o
    ({"type": "nfs", "o": "addr=127.0.0.1", "device": ":/"}, False),  # the host's own server
    ({"type": "nfs", "o": "addr=nfs.example.com", "device": ":/"}, False),  # a name may resolve to it too
    ({"type": "nfs", "o": "rw", "device": "10.0.0.1:/"}, False),  # no addr
    ({"type": "nfs", "o": "addr=10.0.0.1,addr=127.0.0.1", "device": ":/"}, False),
    ({"type": "cifs", "o": "addr=10.0.0.9,credentials=/root/.smb", "device": "//f/s"}, False),
])
def test_local_volume_option_sets(options: dict[str, str], safe: bool) -> None:
    assert local_volume_options_safe(options) is safe


def test_allowed_settings_are_listed_as_exceptions_with_rule_and_detail(repo) -> None:
    """Every refused-unless-allowed setting the Project does allow reaches the plan's header."""
    project = PROJECT + ("spec:\n  policy:\n    allow: [privileged, seccomp-profile, volume-options, "
                         "bind-below-writable, network-driver, container-network]\n"
                         "    allowHostPaths: [/srv]\n")
    files = {
        "project.yaml": project,
        "a.yaml": service("a", "privileged: true\nsecurityOpt: [seccomp=unconfined, no-new-privileges]\n"
                               "mounts: [{type: bind, source: /srv/share, target: /s}]"),
        "b.yaml": service("b", "networkMode: 'container:a'\n"
                               "mounts: [{type: bind, source: /srv/share/x, target: /s, readOnly: true}]"),
        "v.yaml": "apiVersion: gitops/v1\nkind: Volume\nmetadata: {name: v}\nspec:\n  options: {type: proc}\n",
        "n.yaml": "apiVersion: gitops/v1\nkind: Network\nmetadata: {name: n}\nspec: {driver: macvlan}\n",
    }
    outcome = load_repo(repo(files, project=False))
    assert outcome.errors == [] and outcome.desired is not None
    assert list(outcome.desired.exceptions) == [
        PolicyException("Network", "n", "network-driver", "network driver macvlan", "n.yaml", 4),
        PolicyException("Service", "a", "host-path", "bind mount of /srv/share", "a.yaml", 9),
        PolicyException("Service", "a", "privileged", "privileged: true", "a.yaml", 7),
        PolicyException("Service", "a", "seccomp-profile", "securityOpt seccomp=unconfined", "a.yaml", 8),
        PolicyException("Service", "b", "bind-below-writable",
                        "bind mount of /srv/share/x (below /srv/share, which service 'a' can write)", "b.yaml", 8),
        PolicyException("Service", "b", "container-network", "networkMode: container:a", "b.yaml", 7),
        PolicyException("Service", "b", "host-path", "bind mount of /srv/share/x", "b.yaml", 8),
        PolicyException("Volume", "v", "volume-options", "volume options type=proc", "v.yaml", 5),
    ]


def test_one_refusal_in_full(repo) -> None:
    """The whole text of one refusal: where, what, the rule and why, and how to allow it."""
    found = [str(e) for e in load_repo(repo({"s.yaml": service("s", "mounts: [{type: bind, source: /srv/app, "
                                                                    "target: /a}]")})).errors]
    assert found == [
        "s.yaml:7:33: spec.mounts[0].source: bind mount of /srv/app refused by policy rule 'host-path' (bind "
        "mounts are only allowed below the host paths the Project lists); if this is intended, add /srv/app "
        "or a folder above it to spec.policy.allowHostPaths of the Project"]


def test_dotdot_in_allow_host_paths_is_an_error(repo) -> None:
    project = PROJECT + "spec:\n  policy:\n    allowHostPaths: [/srv/../etc]\n"
    found = [str(e) for e in load_repo(repo({"project.yaml": project}, project=False)).errors]
    assert found == ["project.yaml:7:22: spec.policy.allowHostPaths[0]: '/srv/../etc' contains '..'; "
                     "write the folder without it"]
