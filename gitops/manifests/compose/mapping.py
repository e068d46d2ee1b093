"""One compose service (already interpolated, merged and checked against schemas/compose.json) as a gitops/v1
Service document, plus the Network and Volume documents of the stack. Pure apart from reading env files
through the callable the stack passes in (compose reads them with its .env rules, not docker's).

What each compose field becomes is listed in the README ("Compose files"). A field that cannot be mapped
is an error naming the way out, never dropped; fields refused outright are in ``refusals.py``.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from gitops.manifests.compose.document import ComposeDocument, Origin
from gitops.manifests.compose.interpolate import DotenvError, parse_dotenv
from gitops.manifests.parse import JsonPath, ManifestError, RepoPathError
from gitops.manifests.sops import Decrypted

API = "gitops/v1"
SECRETS_DIR = "/run/secrets"
_CONSTRAINT = re.compile(r"^\s*node\.labels\.([A-Za-z0-9_.-]+)\s*==\s*(\S+)\s*$")
_PORT = re.compile(r"^(?:(?:\[(?P<ip6>[0-9a-fA-F:]+)\]|(?P<ip>[0-9]+(?:\.[0-9]+){3})):)?(?:(?P<host>[0-9-]*):)?"
                   r"(?P<container>[0-9-]+)(?:/(?P<proto>tcp|udp|sctp))?$")
_SIZE_UNITS = {"b": "", "k": "Ki", "kb": "Ki", "m": "Mi", "mb": "Mi", "g": "Gi", "gb": "Gi"}


class Mapper:
    """Builds the gitops documents of one stack; collects every error rather than stopping at the first."""

    def __init__(self, base_file: str, origins: dict[JsonPath, Origin], data: dict[str, Any],
                 defaults: dict[str, Any], read_text: Callable[[str], str | None] = lambda path: None,
                 variables: Mapping[str, str] | None = None) -> None:
        self.file = base_file  # relative paths in the stack are relative to this file's folder
        self.origins = origins
        self.data = data
        self.defaults = defaults  # top-level x-gitops: settings every service of the stack takes
        self.read_text = read_text  # env_file: repository path -> text (None: no such file); RepoPathError
        self.variables = variables or {}
        self.names_given: dict[str, str] = {}  # container_name -> the service that gives it
        self.errors: list[ManifestError] = []
        self.base: JsonPath = ()
        self.spec: dict[str, Any] = {}  # the service being mapped
        self.src: dict[JsonPath, tuple[JsonPath, bool]] = {}

    # -- errors located in the compose file -------------------------------------------------------------
    def fail(self, path: JsonPath, message: str, *, key: bool = False) -> None:
        for size in range(len(path), -1, -1):
            origin = self.origins.get(tuple(path[:size]))
            if origin is not None:
                file, positions = origin
                line, col = positions.find(path, key=key) or (1, 1)
                self.errors.append(ManifestError(file, line, col, message))
                return
        self.errors.append(ManifestError(self.file, 1, 1, message))

    def document(self, kind: str, name: str, spec: dict[str, Any], compose_path: JsonPath,
                 sources: dict[JsonPath, tuple[JsonPath, bool]]) -> ComposeDocument:
        line = 1
        for size in range(len(compose_path), -1, -1):
            origin = self.origins.get(tuple(compose_path[:size]))
            if origin is not None:
                line = (origin[1].find(compose_path, key=True) or (1, 1))[0]
                break
        table = {(): (compose_path, False), ("metadata", "name"): (compose_path, False),
                 ("spec",): (compose_path, True), **sources}
        return ComposeDocument(self.file, 0, line, {"apiVersion": API, "kind": kind, "metadata": {"name": name},
                                                    "spec": spec}, sources=table, origins=self.origins)

    # -- networks and volumes ---------------------------------------------------------------------------
    def networks(self, used: set[str]) -> list[ComposeDocument]:
        return self._objects("networks", "Network", used, ("driver", "internal", "attachable"))

    def volumes(self, used: set[str]) -> list[ComposeDocument]:
        return self._objects("volumes", "Volume", used, ("driver",))

    def _objects(self, section: str, kind: str, used: set[str], same: tuple[str, ...]) -> list[ComposeDocument]:
        """The Network or Volume documents of the top-level networks: or volumes: the services use."""
        declared = self.data.get(section) or {}
        made = (self._object(section, kind, name, declared.get(name) or {}, same) for name in sorted(used))
        return [doc for doc in made if doc is not None]

    def _object(self, section: str, kind: str, name: str, item: dict[str, Any],
                same: tuple[str, ...]) -> ComposeDocument | None:
        path: JsonPath = (section, name)
        if item.get("external"):  # exists already, under its name: (or its key); the policy decides
            external: dict[str, Any] = {"external": True}
            if item.get("name") not in (None, name):
                external["dockerName"] = item["name"]
            return self.document(kind, _dns_name(name), external, path, {
                ("spec", "external"): ((*path, "external"), True), ("spec", "dockerName"): ((*path, "name"), True)})
        spec: dict[str, Any] = {}
        sources: dict[JsonPath, tuple[JsonPath, bool]] = {}

        def put(ours: str, value: Any, *theirs: str | int) -> None:
            spec[ours] = value
            sources[("spec", ours)] = ((*path, *theirs), True)

        for key in same:
            if key in item:
                put(key, item[key], key)
        if "labels" in item:
            put("labels", _as_map(item["labels"]), "labels")
        if item.get("driver_opts") and kind == "Volume":
            put("options", {str(k): str(v) for k, v in item["driver_opts"].items()}, "driver_opts")
        elif item.get("driver_opts"):
            self.fail((*path, "driver_opts"), f"{section}.{name}.driver_opts: not supported; remove it")
        subnet = ((item.get("ipam") or {}).get("config") or [{}])[0].get("subnet")
        if subnet:
            put("subnet", subnet, "ipam", "config", 0, "subnet")
        if item.get("name") not in (None, name):
            self.fail((*path, "name"), f"{section}.{name}.name: gitops names {section} PROJECT_NAME itself; "
                      "remove name")
        return self.document(kind, _dns_name(name), spec, path, sources)

    # -- a service ----------------------------------------------------------------------------------------
    def service(self, name: str, svc: dict[str, Any], networks_used: set[str],
                volumes_used: set[str]) -> ComposeDocument | None:
        base: JsonPath = ("services", name)
        self.base, self.spec, self.src = base, {}, {}
        spec, put = self.spec, self.put
        before = len(self.errors)

        if "image" not in svc:
            self.fail(base, f"services.{name}: image is required (gitops deploys images, it does not build them)",
                      key=True)
            return None
        put("image", svc["image"], "image")
        if "pull_policy" in svc:
            put("pullPolicy", {"if_not_present": "missing"}.get(svc["pull_policy"], svc["pull_policy"]), "pull_policy")
        for ours, theirs in (("command", "command"), ("entrypoint", "entrypoint")):
            if theirs in svc:
                value = svc[theirs]
                if isinstance(value, str):  # compose splits a string as a shell would, but runs no shell
                    try:
                        value = shlex.split(value)
                    except ValueError as exc:
                        self.fail((*base, theirs), f"services.{name}.{theirs}: {exc}")
                        continue
                if value:
                    put(ours, list(value), theirs, True)
        self._environment(name, svc)
        self._ports(name, svc)
        self._mounts(name, svc, volumes_used)
        self._networks(name, svc, networks_used)
        self._depends_on(name, svc)
        self._healthcheck(name, svc)
        if "restart" in svc:
            restart = svc["restart"]
            if restart not in ("no", "always", "on-failure", "unless-stopped"):
                self.fail((*base, "restart"), f"services.{name}.restart: {restart!r} is not supported; use no, "
                          "always, on-failure or unless-stopped (a retry count is not supported)")
            else:
                put("restart", restart, "restart")
        if "labels" in svc:
            put("labels", _as_map(svc["labels"]), "labels", True)
        for ours, theirs in (("user", "user"), ("workingDir", "working_dir"), ("hostname", "hostname"),
                             ("init", "init"), ("stopSignal", "stop_signal"), ("readOnlyRootfs", "read_only"),
                             ("capAdd", "cap_add"), ("capDrop", "cap_drop"), ("privileged", "privileged"),
                             ("devices", "devices"), ("securityOpt", "security_opt")):
            if theirs in svc:
                put(ours, svc[theirs], theirs, True)
        if "stop_grace_period" in svc:
            put("stopGracePeriod", _duration(svc["stop_grace_period"]), "stop_grace_period")
        for ours, theirs in (("networkMode", "network_mode"), ("pid", "pid"), ("ipc", "ipc")):
            if theirs in svc:
                value = svc[theirs]
                if theirs == "network_mode" and value.startswith("service:"):
                    self.fail((*base, theirs), f"services.{name}.network_mode: {value!r} is not supported (gitops "
                              "names containers itself); put both services on one network instead")
                    continue
                put(ours, value, theirs)
        self._deploy(name, svc)
        self._files(name, svc)
        self._container_name(name, svc, spec)
        self._x_gitops(name, svc)
        if len(self.errors) > before:
            return None
        return self.document("Service", name, spec, base, self.src)

    def put(self, ours: str, value: Any, theirs: str | JsonPath, parallel: bool = False) -> None:
        """Set ``spec.ours``, made from the compose field ``theirs`` of the service being mapped."""
        self.spec[ours] = value
        self.src[("spec", ours)] = ((*self.base, *((theirs,) if isinstance(theirs, str) else theirs)), parallel)

    def _environment(self, name: str, svc: dict[str, Any]) -> None:
        """env_file values (read with compose's .env rules: quotes, comments, interpolation), then environment,
        which wins, as in compose. Both become ``env``: docker's --env-file rules would keep the quotes."""
        base: JsonPath = ("services", name)
        env: dict[str, Any] = {}
        encrypted_files: list[str] = []
        raw_files = svc.get("env_file")
        for index, item in enumerate([raw_files] if isinstance(raw_files, str) else raw_files or []):
            where: JsonPath = (*base, "env_file") if isinstance(raw_files, str) else (*base, "env_file", index)
            label = f"services.{name}.env_file" + ("" if isinstance(raw_files, str) else f"[{index}]")
            if isinstance(item, dict):
                if item.get("required") is False:
                    self.fail((*where, "required"), f"{label}.required: optional env files are not supported: a "
                              "missing file is an error")
                    continue
                item = item["path"]
            path = posixpath.normpath(posixpath.join(posixpath.dirname(self.file), item))
            try:
                text = self.read_text(path)
            except RepoPathError as exc:
                self.fail(where, f"{label}: {exc}")
                continue
            if text is None:
                self.fail(where, f"{label}: no file {item!r} in the repository")
                continue
            if isinstance(text, Decrypted):  # encrypted: gitops reads it as an envFile, so its values stay secrets
                encrypted_files.append(item)
                continue
            try:
                env.update(parse_dotenv(text, self.variables))
            except DotenvError as exc:
                self.errors.append(ManifestError(path, exc.line, 1, exc.message))
        raw = svc.get("environment")
        if raw is not None:
            items = raw.items() if isinstance(raw, dict) else (_split_assignment(e) for e in raw)
            for index, (key, value) in enumerate(items):
                at = (*base, "environment", key if isinstance(raw, dict) else index)
                if value is None:
                    self.fail(at, f"services.{name}.environment.{key} has no value: gitops never passes on its "
                              "own environment (a plan must not depend on the machine that makes it); give a "
                              "value, or ${" + key + "} with the variable in the .env file")
                    continue
                env[key] = value if isinstance(value, str) else _scalar(value)
        if env:
            self.put("env", env, "environment" if raw is not None else "env_file",
                     isinstance(raw, dict) and not raw_files)
        if encrypted_files:
            self.put("envFile", encrypted_files, "env_file")

    def _ports(self, name: str, svc: dict[str, Any]) -> None:
        if "ports" not in svc:
            return
        ports = []
        for index, item in enumerate(svc["ports"]):
            where = ("services", name, "ports", index)
            label = f"services.{name}.ports[{index}]"
            if isinstance(item, dict):
                container, host = str(item["target"]), str(item.get("published", ""))
                proto, ip = item.get("protocol", "tcp"), item.get("host_ip", "")
            else:
                found = _PORT.match(str(item))
                if not found:
                    self.fail(where, f"{label}: {item!r} is not a port: use CONTAINER, HOST:CONTAINER or "
                              "IP:HOST:CONTAINER, with /udp for UDP")
                    continue
                container, host = found["container"], found["host"] or ""
                proto, ip = found["proto"] or "tcp", found["ip"] or found["ip6"] or ""
            if "-" in container or "-" in host:
                self.fail(where, f"{label}: port ranges are not supported: publish each port on its own line")
                continue
            if proto == "sctp":
                self.fail(where, f"{label}: sctp is not supported; use tcp or udp")
                continue
            if not container.isdigit() or (host and not host.isdigit()):
                self.fail(where, f"{label}: ports must be numbers")
                continue
            port: dict[str, Any] = {"container": int(container)}
            if host:
                port["host"] = int(host)
            if proto != "tcp":
                port["protocol"] = proto
            if ip:
                port["hostIp"] = ip
            ports.append(port)
        self.put("ports", ports, "ports", True)

    def _mounts(self, name: str, svc: dict[str, Any], volumes_used: set[str]) -> None:
        mounts: list[dict[str, Any]] = []
        files: list[dict[str, Any]] = []
        declared = self.data.get("volumes") or {}
        for index, item in enumerate(svc.get("volumes") or []):
            where = ("services", name, "volumes", index)
            label = f"services.{name}.volumes[{index}]"
            if isinstance(item, str):
                parts = item.split(":")
                if len(parts) == 1:
                    self.fail(where, f"{label}: an anonymous volume is not supported: name it (data:{parts[0]}) "
                              "and declare it under volumes:")
                    continue
                if len(parts) > 3:
                    self.fail(where, f"{label}: {item!r} is not SOURCE:TARGET[:MODE]")
                    continue
                source, target = parts[0], parts[1]
                modes = set(parts[2].split(",")) if len(parts) == 3 else set()
                unknown = modes - {"ro", "rw"}
                if unknown:
                    self.fail(where, f"{label}: mode {','.join(sorted(unknown))} is not supported (SELinux relabels "
                              "and propagation are not mapped); use ro or rw")
                    continue
                read_only = "ro" in modes
                kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            else:
                kind, source, target = item["type"], item.get("source", ""), item["target"]
                read_only = bool(item.get("read_only", False))
                if (item.get("volume") or {}).get("nocopy") or (item.get("bind") or {}).get("create_host_path"):
                    self.fail(where, f"{label}: volume.nocopy and bind.create_host_path are not supported; remove "
                              "them")
                    continue
                if kind == "tmpfs":
                    mount: dict[str, Any] = {"type": "tmpfs", "target": target}
                    size = (item.get("tmpfs") or {}).get("size")
                    if size is not None:
                        mount["size"] = _size(size)
                    mounts.append(mount)
                    continue
                if not source:
                    self.fail(where, f"{label}: source is required (anonymous volumes are not supported)")
                    continue
            if kind == "volume":
                if source not in declared:
                    self.fail(where, f"{label}: volume {source!r} is not declared under the top-level volumes:")
                    continue
                volumes_used.add(source)
                mounts.append({"type": "volume", "source": _dns_name(source), "target": target,
                               **({"readOnly": True} if read_only else {})})
            elif source.startswith("~"):
                self.fail(where, f"{label}: a path in a home folder depends on the machine; use a path inside "
                          "the repository (./...) or an absolute host path")
            elif source.startswith("/"):
                mounts.append({"type": "bind", "source": source, "target": target,
                               **({"readOnly": True} if read_only else {})})
            elif all(part in (".", "..") for part in posixpath.normpath(source).split("/")):
                self.fail(where, f"{label}: {source!r} is the stack's own folder or above it: its .env (the "
                          "variables, often passwords) and compose files would be copied into the container; bind "
                          "a subfolder or the files the service needs")
            else:
                # the reconciler's disk is not the host's: repository files are copied into the container
                files.append({"source": posixpath.normpath(source), "target": target})
        for index, item in enumerate([svc["tmpfs"]] if isinstance(svc.get("tmpfs"), str) else svc.get("tmpfs") or []):
            target, _, options = item.partition(":")
            mount = {"type": "tmpfs", "target": target}
            for option in filter(None, options.split(",")):
                key, _, value = option.partition("=")
                if key == "size":
                    mount["size"] = _size(value)
                else:
                    self.fail(("services", name, "tmpfs", index), f"services.{name}.tmpfs[{index}]: option "
                              f"{key!r} is not supported; only size")
            mounts.append(mount)
        if mounts:
            self.put("mounts", mounts, "volumes")
        if files:
            self.put("files", files, "volumes")

    def _files(self, name: str, svc: dict[str, Any]) -> None:
        """secrets: and configs: with file: sources, delivered into the container (secrets masked)."""
        files = []
        for kind in ("secrets", "configs"):
            top = self.data.get(kind) or {}
            for index, item in enumerate(svc.get(kind) or []):
                ref = {"source": item} if isinstance(item, str) else item
                source = ref["source"]
                where = ("services", name, kind, index)
                if source not in top:
                    self.fail(where, f"services.{name}.{kind}[{index}]: {source!r} is not declared under the "
                              f"top-level {kind}:")
                    continue
                target = ref.get("target") or (f"{SECRETS_DIR}/{source}" if kind == "secrets" else f"/{source}")
                if not target.startswith("/"):
                    target = f"{SECRETS_DIR}/{target}" if kind == "secrets" else f"/{target}"
                entry: dict[str, Any] = {"source": posixpath.normpath(top[source]["file"]), "target": target}
                if "mode" in ref:  # written in octal (0440); YAML 1.2 reads that as the number 440
                    mode = str(ref["mode"])
                    if not mode.isdigit() or set(mode) - set("01234567"):
                        self.fail((*where, "mode"), f"services.{name}.{kind}[{index}].mode: {mode!r} is not an octal "
                                  "file mode such as 0440")
                        continue
                    entry["mode"] = "0" + mode.lstrip("0").rjust(3, "0")
                if kind == "secrets":
                    entry["secret"] = True
                files.append(entry)
        if files:
            # repository binds (volumes:) were made files already: these join them
            self.put("files", [*self.spec.get("files", []), *files], "secrets" if svc.get("secrets") else "configs")

    def _networks(self, name: str, svc: dict[str, Any], used: set[str]) -> None:
        if "network_mode" in svc:
            if "networks" in svc:
                self.fail(("services", name, "networks"), f"services.{name}: networks and network_mode cannot both "
                          "be set")
            return
        raw = svc.get("networks")
        declared = self.data.get("networks") or {}
        names = list(raw) if raw is not None else ["default"]
        out = []
        for index, net in enumerate(names):
            aliases = [name]  # on every network, a service is reachable by its name, as in compose
            if isinstance(raw, dict) and raw.get(net):
                aliases += [a for a in raw[net].get("aliases") or [] if a != name]
            if net != "default" and net not in declared:
                key: str | int = net if isinstance(raw, dict) else index
                self.fail(("services", name, "networks", key), f"services.{name}.networks: network {net!r} is not "
                          "declared under the top-level networks:")
                continue
            used.add(net)
            out.append({"name": _dns_name(net), "aliases": aliases})
        self.put("networks", out, "networks")

    def _depends_on(self, name: str, svc: dict[str, Any]) -> None:
        raw = svc.get("depends_on")
        if raw is None:
            return
        out = []
        for dep in raw:
            condition = "service_started"
            if isinstance(raw, dict):
                options = raw[dep] or {}
                condition = options.get("condition", "service_started")
                if options.get("required") is False or options.get("restart"):
                    self.fail(("services", name, "depends_on", dep), f"services.{name}.depends_on.{dep}: required: "
                              "false and restart: true are not supported (gitops does not restart dependents when "
                              "a dependency is replaced); remove them")
                    continue
            if condition == "service_completed_successfully":
                self.fail(("services", name, "depends_on", dep), f"services.{name}.depends_on.{dep}: "
                          "service_completed_successfully is not supported until gitops runs one-shot jobs; run "
                          "the job in CI or in the service's entrypoint")
                continue
            out.append({"service": dep, "condition": "healthy" if condition == "service_healthy" else "started"})
        self.put("dependsOn", out, "depends_on")

    def _healthcheck(self, name: str, svc: dict[str, Any]) -> None:
        hc = svc.get("healthcheck")
        if hc is None:
            return
        test = hc.get("test")
        if hc.get("disable") or (isinstance(test, list) and test[:1] == ["NONE"]):
            self.fail(("services", name, "healthcheck"), f"services.{name}.healthcheck: turning off the image's own "
                      "HEALTHCHECK is not supported yet (Docker would still run it); remove the healthcheck to keep "
                      "the image's, or give a test")
            return
        if test is None:
            self.fail(("services", name, "healthcheck"), f"services.{name}.healthcheck: test is required (gitops "
                      "does not read the image's HEALTHCHECK)")
            return
        if isinstance(test, list) and test[:1] == ["CMD"]:
            command: Any = test[1:]
        elif isinstance(test, list) and test[:1] == ["CMD-SHELL"] and len(test) == 2:
            command = test[1]
        elif isinstance(test, str):
            command = test
        else:
            self.fail(("services", name, "healthcheck", "test"), f"services.{name}.healthcheck.test: start the list "
                      "with CMD or CMD-SHELL (or give a string, run by the shell)")
            return
        out: dict[str, Any] = {"exec": command}
        for ours, theirs in (("interval", "interval"), ("timeout", "timeout"), ("startPeriod", "start_period")):
            if theirs in hc:
                out[ours] = _duration(hc[theirs])
        if "retries" in hc:
            out["retries"] = hc["retries"]
        self.put("healthcheck", out, "healthcheck")

    def _deploy(self, name: str, svc: dict[str, Any]) -> None:
        deploy = svc.get("deploy") or {}
        base: JsonPath = ("services", name, "deploy")
        if "replicas" in deploy:
            self.put("replicas", deploy["replicas"], ("deploy", "replicas"))
        resources: dict[str, Any] = {}
        limits = (deploy.get("resources") or {}).get("limits") or {}
        reservations = (deploy.get("resources") or {}).get("reservations") or {}
        cpus = limits.get("cpus", svc.get("cpus"))
        if cpus is not None:
            try:
                resources["cpus"] = float(cpus)
            except ValueError:
                self.fail((*base, "resources", "limits", "cpus"), f"services.{name}: cpus {cpus!r} is not a number")
        memory = limits.get("memory", svc.get("mem_limit"))
        if memory is not None:
            resources["memory"] = _size(memory)
        reserved = reservations.get("memory", svc.get("mem_reservation"))
        if reserved is not None:
            resources["memoryReservation"] = _size(reserved)
        if resources:
            self.put("resources", resources, ("deploy", "resources"))
        update: dict[str, Any] = {}
        config = deploy.get("update_config") or {}
        for ours, theirs in (("parallelism", "parallelism"), ("order", "order"), ("failureAction", "failure_action")):
            if theirs in config:
                update[ours] = config[theirs]
        if "monitor" in config:
            update["minHealthyTime"] = _duration(config["monitor"])
        if update:
            self.put("update", update, ("deploy", "update_config"))
        selector = {}
        for index, constraint in enumerate((deploy.get("placement") or {}).get("constraints") or []):
            found = _CONSTRAINT.match(constraint)
            if not found:
                self.fail((*base, "placement", "constraints", index), f"services.{name}.deploy.placement."
                          f"constraints[{index}]: only node.labels.KEY == VALUE maps onto gitops (a Host label "
                          "selector); for host names use x-gitops: {placement: {hosts: [...]}}")
                continue
            selector[found[1]] = found[2]
        if selector:
            self.put("placement", {"selector": selector}, ("deploy", "placement"))

    def _container_name(self, name: str, svc: dict[str, Any], spec: dict[str, Any]) -> None:
        """gitops names containers itself (old and new run side by side during an update), so the name
        given stays reachable as a network alias; with several replicas one name cannot be kept."""
        given = svc.get("container_name")
        if given is None:
            return
        if spec.get("replicas", 1) > 1:
            self.fail(("services", name, "container_name"), f"services.{name}.container_name: one name cannot "
                      "belong to several replicas; remove container_name (the service name is a network alias)")
            return
        other = self.names_given.get(given) or (given if given in (self.data.get("services") or {}) and
                                                given != name else None)
        if other is not None:
            self.fail(("services", name, "container_name"), f"services.{name}.container_name: {given!r} is already "
                      f"the name of service {other}; container names must be unique")
            return
        self.names_given[given] = name
        for net in spec.get("networks") or []:
            if given not in net["aliases"]:
                net["aliases"].append(given)

    def _x_gitops(self, name: str, svc: dict[str, Any]) -> None:
        settings = {**self.defaults, **(svc.get("x-gitops") or {})}
        where: JsonPath = ("x-gitops",)
        for key, value in settings.items():
            if key in ("pullPolicy", "selfHeal", "placement"):
                self.put(key, value, where)
            elif key in ("healthyDeadline", "minHealthyTime"):
                if "update" in self.spec:  # deploy.update_config made it: errors about it point there
                    self.spec["update"][key] = value
                else:
                    self.put("update", {key: value}, where)
            else:
                self.fail(("services", name, "x-gitops", key), f"services.{name}.x-gitops.{key}: unknown setting; "
                          "x-gitops takes pullPolicy, selfHeal, placement, healthyDeadline and minHealthyTime",
                          key=True)


def _as_map(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        return {str(k): "" if v is None else _scalar(v) for k, v in raw.items()}
    return {k: "" if v is None else v for k, v in (_split_assignment(item) for item in raw)}


def _split_assignment(item: str) -> tuple[str, str | None]:
    key, sep, value = item.partition("=")
    return key, value if sep else None


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _duration(text: str) -> str:
    """Compose durations (10s, 1m30s, 500ms, 100us) as gitops writes them (no microseconds)."""
    total = 0.0
    for number, unit in re.findall(r"([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h)", text):
        total += float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
    millis = round(total * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def _size(value: Any) -> Any:
    """Compose sizes (1g, 512m, 64M, 100kb, bytes) as gitops sizes (1Gi, 512Mi, ...); compose's units are
    binary, like Docker's."""
    if isinstance(value, int):
        return value
    found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(value))
    if not found or found[2].lower() not in _SIZE_UNITS and found[2]:
        return str(value)  # the gitops schema says what is wrong with it
    return f"{found[1]}{_SIZE_UNITS.get(found[2].lower(), '')}"


def _dns_name(name: str) -> str:
    """Names are kept as written: lower-casing them would merge Data and data into one volume without a word; the
    gitops schema says when a name is not valid (lower-case letters, digits, '-', '_', '.')."""
    return name
