"""Semantic checks and security policy over schema-valid documents.

Runs after the JSON Schema: unique names, references, dependency cycles, port clashes, update
order against fixed host ports, values that parse, and the policy of SECURITY.md item 4 (its rules
are in policy.py). Every error is located at the field it is about. Pure: no docker, git, network or clock.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import SplitResult, urlsplit

from gitops.core.model import LABEL_PREFIX, LOCAL_HOST, PolicyException
from gitops.core.quantities import parse_duration, parse_size
from gitops.manifests.parse import Document, ManifestError
from gitops.manifests.policy import Policy, PolicyViolation, policy_findings, policy_message

# --- helpers shared with desired.py -------------------------------------------------------------------


def spec_of(doc: Document) -> dict[str, Any]:
    spec = doc.data.get("spec")
    return spec if isinstance(spec, dict) else {}


def labels_of(doc: Document) -> dict[str, str]:
    labels = spec_of(doc).get("labels") or {}
    return dict(labels)


def merged_service_spec(doc: Document, defaults: dict[str, Any]) -> dict[str, Any]:
    """A service's spec with the Project's defaults filled in (one level deep for mappings)."""
    spec = dict(spec_of(doc))
    for key, value in defaults.items():
        if key not in spec:
            spec[key] = value
        elif isinstance(value, dict) and isinstance(spec[key], dict):
            spec[key] = {**value, **spec[key]}
    return spec


def place(spec: dict[str, Any], hosts: Sequence[Document]) -> list[str]:
    """Host names a service may run on: its explicit list, the hosts its selector matches, else all."""
    if not hosts:
        return [LOCAL_HOST]
    placement = spec.get("placement") or {}
    if placement.get("hosts"):
        return list(placement["hosts"])
    selector = placement.get("selector") or {}
    names = []
    for host in sorted(hosts, key=lambda h: h.name):
        labels = labels_of(host)
        if all(labels.get(k) == v for k, v in selector.items()):
            names.append(host.name)
    return names


def depends_on(spec: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for dep in spec.get("dependsOn") or []:
        if isinstance(dep, str):
            out.append((dep, "started"))
        else:
            out.append((dep["service"], dep.get("condition", "started")))
    return out


def network_names(spec: dict[str, Any]) -> list[str]:
    return [n if isinstance(n, str) else n["name"] for n in spec.get("networks") or []]


def update_order(spec: dict[str, Any]) -> str:
    """Explicit order, else start-first unless a fixed host port forces stop-first."""
    order = (spec.get("update") or {}).get("order")
    if order:
        return str(order)
    return "stop-first" if any(p.get("host") for p in spec.get("ports") or []) else "start-first"


# --- the checks ---------------------------------------------------------------------------------------


def find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Every elementary cycle reachable by DFS, each once, as [a, b, ..., a]. Iterative (no recursion)."""
    cycles: list[list[str]] = []
    seen_cycles: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1 = on stack, 2 = done
    for start in sorted(graph):
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = [start]
        state[start] = 1
        while stack:
            node, i = stack[-1]
            children = sorted(graph.get(node, []))
            if i < len(children):
                stack[-1] = (node, i + 1)
                child = children[i]
                if state.get(child) == 1:
                    cycle = path[path.index(child):] + [child]
                    key = frozenset(cycle)
                    if key not in seen_cycles:
                        seen_cycles.add(key)
                        cycles.append(cycle)
                elif not state.get(child) and child in graph:
                    state[child] = 1
                    path.append(child)
                    stack.append((child, 0))
            else:
                state[node] = 2
                path.pop()
                stack.pop()
    return cycles


def _ip_overlap(a: str, b: str) -> bool:
    unspecified = ("", "0.0.0.0", "::")
    return a in unspecified or b in unspecified or a == b


def _parse_url(raw: str) -> SplitResult | str:
    """The URL, or why it is not one (urlsplit and .port raise on '[::1' and ':99999')."""
    try:
        url = urlsplit(raw)
        url.hostname  # noqa: B018 - parses the host part: raises on a bracket left open
    except ValueError:
        return "the host is not a valid address (an IPv6 address needs both brackets, as in tcp://[::1]:2376)"
    try:
        url.port  # noqa: B018 - raises on a port that is not a number, or out of range
    except ValueError:
        return "the port must be a number from 1 to 65535"
    return url


# Every duration desired.py parses: each is checked here, so building the model never raises.
_DURATION_FIELDS: tuple[tuple[str, ...], ...] = (
    ("spec", "stopGracePeriod"),
    ("spec", "healthcheck", "interval"), ("spec", "healthcheck", "timeout"),
    ("spec", "healthcheck", "startPeriod"),
    ("spec", "update", "minHealthyTime"), ("spec", "update", "healthyDeadline"),
)


class _Checker:
    def __init__(self, docs: Sequence[Document], broken: Sequence[Document] = (),
                 project_explained: bool = False) -> None:
        self.docs = docs
        self.project_explained = project_explained
        self.errors: list[ManifestError] = []
        self.by_kind: dict[str, dict[str, Document]] = defaultdict(dict)
        # Names of documents that failed the schema: they exist, so references to them are not errors.
        self.broken: dict[str, set[str]] = defaultdict(set)
        for doc in broken:
            if doc.name:
                self.broken[doc.kind].add(doc.name)

    def err(self, doc: Document, path: tuple[str | int, ...], message: str, *, key: bool = False) -> None:
        self.errors.append(doc.error(path, message, key=key))

    def run(self) -> list[ManifestError]:
        self.unique_names()
        projects = list(self.by_kind["Project"].values())
        if not projects and not self.broken["Project"] and not self.project_explained:
            self.errors.append(ManifestError(".", 0, 0, "no Project manifest: add one document with "
                                             "'kind: Project' and metadata.name to name the project "
                                             "(its name labels every container gitops manages)"))
        project = projects[0] if projects else None
        defaults = (spec_of(project).get("defaults") or {}) if project else {}
        hosts = list(self.by_kind["Host"].values())
        for host in hosts:
            self.host(host)
        if project is not None:
            self.policy_paths(project)
        services = {name: merged_service_spec(doc, defaults) for name, doc in self.by_kind["Service"].items()}
        for name, doc in self.by_kind["Service"].items():
            self.service(doc, services[name], hosts, services)
        self.policy(project, services)
        self.cycles(services)
        self.port_clashes(services, hosts)
        for kind in ("Network", "Volume"):
            for doc in self.by_kind[kind].values():
                self.external(doc)
        return self.errors

    def external(self, doc: Document) -> None:
        """An external network or volume exists already: gitops neither makes nor removes it, so the settings
        for making or removing one would be dropped without a word."""
        spec = spec_of(doc)
        what = doc.kind.lower()
        if not spec.get("external"):
            if "dockerName" in spec:
                self.err(doc, ("spec", "dockerName"), f"spec.dockerName: only an external {what} has a Docker name "
                         f"of its own (gitops names its {what}s PROJECT_NAME); add external: true or remove it")
            return
        for key in ("driver", "internal", "attachable", "subnet", "labels", "options", "remove"):
            if key in spec:
                self.err(doc, ("spec", key), f"spec.{key}: an external {what} is not created or removed by "
                         f"gitops, so {key} would not be applied; remove it")

    def unique_names(self) -> None:
        for doc in self.docs:
            seen = self.by_kind[doc.kind]
            if doc.name in seen:
                first = seen[doc.name]
                where = f"{first.file}:{first.where(('metadata', 'name'))[0]}"
                self.err(doc, ("metadata", "name"), f"metadata.name: {doc.kind} '{doc.name}' is already "
                         f"defined at {where}; names must be unique per kind")
                continue
            seen[doc.name] = doc
        if len(self.by_kind["Project"]) > 1:
            for doc in list(self.by_kind["Project"].values())[1:]:
                self.err(doc, ("kind",), "kind: only one Project may exist in a repository; merge them")

    def policy(self, project: Document | None, services: dict[str, dict[str, Any]]) -> None:
        """Each setting a policy rule refuses, unless the Project allows it (gitops/manifests/policy.py)."""
        policy = Policy.of(spec_of(project) if project else {})
        for kind, name, v in _findings(self.by_kind, project, services):
            if not policy.allows(v):
                self.err(self.by_kind[kind][name], v.path, policy_message(v))

    def policy_paths(self, project: Document) -> None:
        paths = (spec_of(project).get("policy") or {}).get("allowHostPaths") or []
        for i, path in enumerate(paths):
            if ".." in path.split("/"):
                self.err(project, ("spec", "policy", "allowHostPaths", i), f"spec.policy.allowHostPaths[{i}]: "
                         f"{path!r} contains '..'; write the folder without it")

    def host(self, doc: Document) -> None:
        spec = spec_of(doc)
        swarm = spec.get("swarm") or {}
        if swarm and spec.get("mode") != "swarm":
            self.err(doc, ("spec", "swarm"), "spec.swarm: only applies to a Swarm cluster; set spec.mode: swarm "
                     "(the url of a manager), or remove spec.swarm")
        elif swarm.get("endpointMode") == "dnsrr" and swarm.get("publishMode", "ingress") == "ingress":
            self.err(doc, ("spec", "swarm", "endpointMode"), "spec.swarm.endpointMode: dnsrr cannot publish "
                     "ports through the routing mesh (Docker refuses it); set spec.swarm.publishMode: host")
        raw = spec["url"]
        url = _parse_url(raw)
        if isinstance(url, str):
            self.err(doc, ("spec", "url"), f"spec.url: {raw!r} is not a valid URL: {url}")
            return
        if url.scheme == "tcp":
            if not url.hostname or not url.port:
                self.err(doc, ("spec", "url"), "spec.url: tcp:// needs a host and a port, "
                         "e.g. tcp://10.0.0.5:2376")
            elif not spec.get("tls") and not spec.get("insecure"):
                # loopback included: a Host manifest must not make gitops call local services
                self.err(doc, ("spec", "url"), f"spec.url: plain tcp:// to {url.hostname} sends the "
                         "Docker API (root on that host) unencrypted and lets a manifest make gitops call "
                         "any service there; configure spec.tls, or set spec.insecure: true to accept the risk")
            tls = spec.get("tls") or {}
            if tls.get("verify") is False and not spec.get("insecure"):
                self.err(doc, ("spec", "tls", "verify"), "spec.tls.verify: false turns off server "
                         "verification; set spec.insecure: true as well to accept the risk")
        elif url.scheme == "ssh" and not url.hostname:
            self.err(doc, ("spec", "url"), "spec.url: ssh:// needs a host, e.g. ssh://deploy@10.0.0.5")
        elif url.scheme == "unix" and not url.path:
            self.err(doc, ("spec", "url"), "spec.url: unix:// needs a socket path, "
                     "e.g. unix:///var/run/docker.sock")
        if spec.get("tls") and url.scheme != "tcp":
            self.err(doc, ("spec", "tls"), "spec.tls: only applies to tcp:// hosts")

    def swarm_placement(self, doc: Document, spec: dict[str, Any], hosts: list[Document]) -> None:
        """A service on a Swarm cluster runs there alone (Swarm places its tasks on the cluster's nodes); node
        selectors and spread only mean something there."""
        placement = spec_of(doc).get("placement") or {}
        clusters = {h.name for h in hosts if spec_of(h).get("mode") == "swarm"}
        placed = place(spec, hosts) if hosts else []
        on_swarm = [h for h in placed if h in clusters]
        if on_swarm and len(placed) > 1:
            where = ("spec", "placement") if placement else ("spec",)
            self.err(doc, where, f"spec.placement: the service would run on {', '.join(sorted(placed))}, and "
                     f"{on_swarm[0]} is a Swarm cluster, which runs a service alone (Swarm places its tasks on the "
                     f"cluster's nodes); set placement.hosts: [{on_swarm[0]}], or place it on plain hosts only")
        for key in placement.get("nodeSelector") or {}:
            if str(key).startswith("node."):
                self.err(doc, ("spec", "placement", "nodeSelector", key), f"spec.placement.nodeSelector.{key}: write "
                         f"the node label's name alone ({str(key).removeprefix('node.labels.')}); gitops writes "
                         "node.labels.NAME==VALUE itself, and only node labels can be selected")
        for i, label in enumerate(placement.get("spread") or []):
            if str(label).startswith("node."):
                self.err(doc, ("spec", "placement", "spread", i), f"spec.placement.spread[{i}]: write the node "
                         f"label's name alone ({str(label).removeprefix('node.labels.')}); gitops spreads over "
                         "node.labels.NAME itself")
        for field in ("nodeSelector", "spread"):
            if placement.get(field) and not on_swarm:
                self.err(doc, ("spec", "placement", field), f"spec.placement.{field}: only applies to a service "
                         "on a Swarm cluster (a Host with mode: swarm); on plain hosts, use placement.selector")

    def service(self, doc: Document, spec: dict[str, Any], hosts: list[Document],
                services: dict[str, dict[str, Any]]) -> None:
        name = doc.name
        host_names = {h.name for h in hosts} | self.broken["Host"]
        placement = spec_of(doc).get("placement") or {}
        for i, host in enumerate(placement.get("hosts") or []):
            if not host_names:
                self.err(doc, ("spec", "placement", "hosts", i), f"spec.placement.hosts[{i}]: host "
                         f"'{host}' is not defined; there are no Host manifests (the local engine is "
                         "used as the one host)")
            elif host not in host_names:
                self.err(doc, ("spec", "placement", "hosts", i), f"spec.placement.hosts[{i}]: host "
                         f"'{host}' is not defined{_suggest(host, host_names)}")
        if placement.get("hosts") and placement.get("selector"):
            self.err(doc, ("spec", "placement"), "spec.placement: use either hosts or selector, not both")
        if placement.get("selector") and not host_names:
            self.err(doc, ("spec", "placement", "selector"), "spec.placement.selector: there are no Host "
                     "manifests, so no host has these labels (the local engine, used as the one host, has none); "
                     "declare the hosts with their labels, or remove the selector")
        elif placement.get("selector") and hosts and not place(spec, hosts):
            self.err(doc, ("spec", "placement", "selector"), "spec.placement.selector: no Host has "
                     "these labels, so the service would run nowhere")
        self.swarm_placement(doc, spec, hosts)

        networks = set(self.by_kind["Network"]) | self.broken["Network"]
        in_doc = "networks" in spec_of(doc)
        for i, net in enumerate(network_names(spec)):
            if net not in networks:
                path = ("spec", "networks", i) if in_doc else ("spec",)
                self.err(doc, path, f"spec.networks[{i}]: network '{net}' is not defined"
                         f"{_suggest(net, set(networks))}")
        if spec.get("networkMode") and spec.get("networks"):
            self.err(doc, ("spec", "networkMode"), "spec.networkMode: cannot be combined with networks")

        volumes = set(self.by_kind["Volume"]) | self.broken["Volume"]
        for i, mount in enumerate(spec.get("mounts") or []):
            mtype, source = mount["type"], mount.get("source")
            path = ("spec", "mounts", i)
            if mtype == "volume":
                if not source:
                    self.err(doc, path, f"spec.mounts[{i}]: a volume mount needs source (a Volume name)")
                elif source not in volumes:
                    self.err(doc, (*path, "source"), f"spec.mounts[{i}].source: volume '{source}' is not "
                             f"defined{_suggest(source, set(volumes))}")
            elif mtype == "bind":
                if not source or not source.startswith("/"):
                    self.err(doc, path, f"spec.mounts[{i}]: a bind mount needs an absolute source path "
                             "on the host")
                elif ".." in source.split("/"):
                    self.err(doc, (*path, "source"), f"spec.mounts[{i}].source: {source!r} contains '..': "
                             "Docker resolves it on the host after following symlinks, so write the path "
                             "without '..'")
            elif mtype == "tmpfs" and source:
                self.err(doc, (*path, "source"), f"spec.mounts[{i}].source: a tmpfs mount has no source")
            if mtype != "tmpfs" and "size" in mount:
                self.err(doc, (*path, "size"), f"spec.mounts[{i}].size: only tmpfs mounts have a size")

        self.files(doc, spec)

        for i, (dep, condition) in enumerate(depends_on(spec)):
            path = ("spec", "dependsOn", i)
            if dep == name:
                self.err(doc, path, f"spec.dependsOn[{i}]: a service cannot depend on itself")
            elif dep in self.broken["Service"]:
                continue
            elif dep not in services:
                self.err(doc, path, f"spec.dependsOn[{i}]: service '{dep}' is not defined"
                         f"{_suggest(dep, set(services))}")
            elif condition == "healthy" and not services[dep].get("healthcheck"):
                self.err(doc, path, f"spec.dependsOn[{i}]: condition 'healthy' needs service '{dep}' to "
                         "have a healthcheck")

        for key in spec.get("labels") or {}:
            if key.startswith(LABEL_PREFIX):
                self.err(doc, ("spec", "labels", key), f"spec.labels.{key}: the '{LABEL_PREFIX}' prefix is "
                         "reserved for gitops' ownership labels", key=True)

        self.values(doc, spec)
        self.health_and_ports(doc, spec, on_cluster=self._cluster_of(spec, hosts) is not None)

    def files(self, doc: Document, spec: dict[str, Any]) -> None:
        """Targets of repository files: clean absolute paths, each once, and somewhere Docker can copy to."""
        seen: dict[str, int] = {}
        for i, item in enumerate(spec.get("files") or []):
            path = ("spec", "files", i, "target")
            target = item["target"]
            parts = target.split("/")[1:]
            if target == "/" or any(p in ("", ".", "..") for p in parts):
                self.err(doc, path, f"spec.files[{i}].target: {target!r} is not a clean absolute path: write it "
                         "without '.', '..', '//' or a trailing '/' (e.g. /etc/app/app.conf)")
            elif parts[0] in ("proc", "sys", "dev"):
                self.err(doc, path, f"spec.files[{i}].target: /{parts[0]} is made by the kernel when the container "
                         "starts; files cannot be delivered there")
            elif target in seen:
                self.err(doc, path, f"spec.files[{i}].target: {target} is already the target of "
                         f"spec.files[{seen[target]}]")
            seen.setdefault(target, i)
        if spec.get("files") and spec.get("readOnlyRootfs"):
            self.err(doc, ("spec", "files"), "spec.files: cannot be delivered into a container with readOnlyRootfs: "
                     "Docker refuses to copy into a read-only root file system; drop readOnlyRootfs or the files")

    def values(self, doc: Document, spec: dict[str, Any]) -> None:
        """Durations and sizes that match the schema's pattern but make no sense (or are too large)."""
        durations: dict[tuple[str, ...], float] = {}
        for path in _DURATION_FIELDS:
            parent = spec.get(path[1]) if len(path) == 3 else spec
            if isinstance(parent, dict) and path[-1] in parent:
                try:
                    durations[path] = parse_duration(parent[path[-1]])
                except ValueError as exc:  # too long: desired.py must never see it
                    self.err(doc, path, f"{'.'.join(map(str, path))}: {exc}")
        for key in ("interval", "timeout"):
            if durations.get(("spec", "healthcheck", key), 1.0) < 0.001:
                self.err(doc, ("spec", "healthcheck", key), f"spec.healthcheck.{key}: must be at least 1ms")
        if ("spec", "update", "healthyDeadline") in durations:
            deadline = durations[("spec", "update", "healthyDeadline")]
            if deadline <= 0:
                self.err(doc, ("spec", "update", "healthyDeadline"),
                         "spec.update.healthyDeadline: must be more than 0s")
            elif durations.get(("spec", "update", "minHealthyTime"), 0.0) >= deadline:
                self.err(doc, ("spec", "update", "minHealthyTime"), "spec.update.minHealthyTime: must be "
                         "shorter than healthyDeadline, or no update could ever succeed")
        res = spec.get("resources") or {}
        for key in ("memory", "memoryReservation"):
            if key in res:
                try:
                    size = parse_size(res[key])
                except ValueError as exc:
                    self.err(doc, ("spec", "resources", key), f"spec.resources.{key}: {exc}")
                    continue
                if size < 6 * 1024 * 1024:
                    self.err(doc, ("spec", "resources", key), f"spec.resources.{key}: Docker needs at least "
                             "6Mi")
        if "memory" in res and "memoryReservation" in res:
            try:
                if parse_size(res["memoryReservation"]) > parse_size(res["memory"]):
                    self.err(doc, ("spec", "resources", "memoryReservation"), "spec.resources."
                             "memoryReservation: must not exceed memory")
            except ValueError:
                pass
        for i, mount in enumerate(spec.get("mounts") or []):
            if "size" in mount:
                try:
                    parse_size(mount["size"])
                except ValueError as exc:
                    self.err(doc, ("spec", "mounts", i, "size"), f"spec.mounts[{i}].size: {exc}")

    @staticmethod
    def _cluster_of(spec: dict[str, Any], hosts: list[Document]) -> Document | None:
        """The Swarm cluster (a Host with mode: swarm) the service is placed on alone, if it is."""
        placed = place(spec, hosts) if hosts else []
        found = [h for h in hosts if h.name in placed and spec_of(h).get("mode") == "swarm"]
        return found[0] if len(placed) == 1 and found else None

    def health_and_ports(self, doc: Document, spec: dict[str, Any], *, on_cluster: bool = False) -> None:
        """Checks of health probes and host ports that hold for containers gitops places on a host. On a Swarm
        cluster, tasks run where Swarm puts them, an http/tcp probe is refused when the service is built (with the
        way out), and published ports go through the routing mesh or to the task's own node."""
        if on_cluster:
            return
        hc = spec.get("healthcheck") or {}
        probe = hc.get("http") or hc.get("tcp")
        ports = spec.get("ports") or []
        if probe:
            published = [p for p in ports if p["container"] == probe["port"] and p.get("host")]
            if not published:
                kind = "http" if "http" in hc else "tcp"
                self.err(doc, ("spec", "healthcheck", kind, "port"), f"spec.healthcheck.{kind}.port: "
                         f"container port {probe['port']} must be published with a fixed host port in "
                         "spec.ports: the reconciler probes it from outside the container")
        fixed = [i for i, p in enumerate(ports) if p.get("host")]
        explicit = (spec_of(doc).get("update") or {}).get("order") or (spec.get("update") or {}).get("order")
        if fixed and explicit == "start-first":
            self.err(doc, ("spec", "update", "order"), "spec.update.order: start-first cannot work with "
                     f"the fixed host port {ports[fixed[0]]['host']}: old and new containers would "
                     "share a host and both bind it; use order: stop-first, or drop the host port")

    def cycles(self, services: dict[str, dict[str, Any]]) -> None:
        graph = {name: [d for d, _ in depends_on(spec) if d in services and d != name]
                 for name, spec in services.items()}
        for cycle in find_cycles(graph):
            doc = self.by_kind["Service"][cycle[0]]
            self.err(doc, ("spec", "dependsOn"), "spec.dependsOn: dependency cycle "
                     + " -> ".join(cycle) + "; services in a cycle could never start")

    def port_clashes(self, services: dict[str, dict[str, Any]], hosts: list[Document]) -> None:
        # (host, protocol, port) -> list of (ip, service, slot)
        bound: dict[tuple[str, str, int], list[tuple[str, str, int]]] = defaultdict(list)
        for name in sorted(services):
            spec = services[name]
            placed = place(spec, hosts)
            if not placed or self._cluster_of(spec, hosts) is not None:  # Swarm places a cluster's tasks
                continue
            replicas = spec.get("replicas", 1)
            for slot in range(replicas):
                host = placed[slot % len(placed)]
                for i, port in enumerate(spec.get("ports") or []):
                    if not port.get("host"):
                        continue
                    key = (host, port.get("protocol", "tcp"), port["host"])
                    ip = port.get("hostIp", "")
                    for other_ip, other, _slot in bound[key]:
                        if _ip_overlap(ip, other_ip):
                            doc = self.by_kind["Service"][name]
                            who = ("another replica of this service" if other == name
                                   else f"service '{other}'")
                            self.err(doc, ("spec", "ports", i, "host"), f"spec.ports[{i}].host: "
                                     f"{port['host']}/{key[1]} on host '{host}' is already published by "
                                     f"{who}; use another host port, fewer replicas per host, or spread "
                                     "them with placement")
                            break
                    else:
                        bound[key].append((ip, name, slot))
                        continue
                    break


def _suggest(name: str, known: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""


def _findings(by_kind: dict[str, dict[str, Document]], project: Document | None,
              services: dict[str, dict[str, Any]]) -> list[tuple[str, str, PolicyViolation]]:
    return policy_findings(spec_of(project) if project else {}, services,
                           {name: spec_of(doc) for name, doc in by_kind["Volume"].items()},
                           {name: spec_of(doc) for name, doc in by_kind["Network"].items()})


def allowed_policy_exceptions(docs: Sequence[Document]) -> list[PolicyException]:
    """The settings of schema-valid ``docs`` that a policy rule refuses but the Project allows.

    Bind mounts inside spec.policy.allowHostPaths are among them (rule 'host-path'). These are what
    a reviewer must see first: plans list them at the top.
    """
    by_kind: dict[str, dict[str, Document]] = defaultdict(dict)
    for doc in docs:
        by_kind[doc.kind].setdefault(doc.name, doc)
    project = next(iter(by_kind["Project"].values()), None)
    defaults = (spec_of(project).get("defaults") or {}) if project else {}
    services = {name: merged_service_spec(doc, defaults) for name, doc in by_kind["Service"].items()}
    policy = Policy.of(spec_of(project) if project else {})
    out: list[PolicyException] = []
    for kind, name, v in _findings(by_kind, project, services):
        if policy.allows(v):
            doc = by_kind[kind][name]
            out.append(PolicyException(kind, name, v.rule, v.detail, doc.file, doc.where(v.path)[0]))
    return sorted(set(out), key=lambda e: (e.kind, e.name, e.rule, e.detail))


def check_documents(docs: Sequence[Document], *, broken: Sequence[Document] = (),
                    project_explained: bool = False) -> list[ManifestError]:
    """All semantic and policy errors of a set of schema-valid documents.

    ``broken`` are the documents that failed the schema: their names count as defined, so one
    mistake is not reported again as a missing reference everywhere it is used. ``project_explained``:
    a missing Project was already reported another way (a compose stack without a name).
    """
    return sorted(set(_Checker(docs, broken, project_explained).run()))
