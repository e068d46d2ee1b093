"""Compose files as input, without Docker: what every mapped field becomes, every refusal's exact message with
FILE:LINE:COL, interpolation from .env only, profiles, merging several files, the project's name, and the same
checks as manifests (policy, placement) reported at the compose field. Behaviour on Docker: test_compose_docker."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from gitops.core.model import DesiredState, ephemeral_key
from gitops.manifests.compose import refusals as r
from gitops.manifests.load import load_repo
from tests.conftest import PROJECT, service, write_files
from tests.hostile import run_gitops

HOST = ("apiVersion: gitops/v1\nkind: Host\nmetadata: {name: local}\n"
        "spec: {url: 'unix:///var/run/docker.sock', labels: {zone: eu}}\n")


def load(root: Path) -> DesiredState:
    outcome = load_repo(root, revision="r1", key=ephemeral_key())
    assert outcome.desired is not None, [str(e) for e in outcome.errors]
    return outcome.desired


def errors(root: Path) -> list[str]:
    outcome = load_repo(root, revision="r1", key=ephemeral_key())
    assert outcome.desired is None
    return [str(e) for e in outcome.errors]


def stack(tmp_path: Path, compose: str, **files: str) -> Path:
    root = tmp_path / "repo"
    root.mkdir(parents=True, exist_ok=True)
    return write_files(root, {"compose.yaml": compose, **{k.replace("__", "/").replace("_DOT_", "."): v
                                                          for k, v in files.items()}})


EVERY_FIELD = """\
name: mon
x-common: &common
  restart: unless-stopped
  labels: {team: ops}
x-gitops: {pullPolicy: always}
services:
  prom:
    <<: *common
    image: prom/prometheus:${PROM_TAG}
    command: --config.file=/etc/prometheus/prometheus.yml --web.enable-lifecycle
    entrypoint: ["/bin/prometheus"]
    environment:
      - TZ=UTC
      - EMPTY=
      - PRICE=$$5
    env_file: [prom.env]
    ports:
      - "127.0.0.1:9090:9090"
      - "9100"
      - target: 9091
        published: "19091"
        protocol: udp
    expose: ["9090"]
    volumes:
      - ./conf:/etc/prometheus:ro
      - type: volume
        source: tsdb
        target: /prometheus
      - type: tmpfs
        target: /scratch
        tmpfs: {size: 64m}
      - logs:/logs:ro
    tmpfs: ["/run:size=16m"]
    networks:
      back:
        aliases: [metrics]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "localhost:9090/-/ready"]
      interval: 1m30s
      timeout: 500ms
      retries: 3
      start_period: 10s
    user: "65534"
    working_dir: /prometheus
    hostname: prom
    init: true
    stop_signal: SIGINT
    stop_grace_period: 1m
    cap_drop: [ALL]
    container_name: prometheus
    secrets: [token]
    configs:
      - source: rules
        target: /etc/prometheus/rules.yml
        mode: 0440
    deploy:
      resources:
        limits: {cpus: "0.5", memory: 512M}
        reservations: {memory: 128m}
      update_config: {parallelism: 1, order: stop-first, failure_action: pause, monitor: 5s}
      placement: {constraints: ["node.labels.zone == eu"]}
    x-gitops: {healthyDeadline: 2m, selfHeal: false}
  graf:
    image: grafana/grafana:11.0.0
    depends_on:
      prom: {condition: service_healthy}
    profiles: [ui]
  alert:
    image: prom/alertmanager:v0.27.0
    command: ["--config.file=/etc/am.yml"]
    depends_on: [prom]
    network_mode: none
    healthcheck: {test: "wget -q localhost:9093/-/ready"}
networks:
  back: {driver: bridge, internal: true, labels: [tier=back]}
volumes:
  tsdb: {labels: {keep: "yes"}}
  logs:
secrets:
  token: {file: ./token.txt}
configs:
  rules: {file: ./rules.yml}
"""


def test_every_mapped_field_becomes_what_the_readme_says(tmp_path: Path) -> None:
    root = stack(tmp_path, EVERY_FIELD, _DOT_env="PROM_TAG=v2.53.0\n", prom_DOT_env="A=1\n", token_DOT_txt="s3cret\n",
                 rules_DOT_yml="groups: []\n", conf__prometheus_DOT_yml="global: {}\n", host_DOT_yaml=HOST)
    desired = load(root)
    assert desired.project.name == "mon"
    assert [s.name for s in desired.services] == ["alert", "prom"]  # graf is in a profile not selected
    prom = desired.service("prom")
    assert prom.image == "prom/prometheus:v2.53.0" and prom.pull_policy == "always"
    assert prom.command == ("--config.file=/etc/prometheus/prometheus.yml", "--web.enable-lifecycle")
    assert prom.entrypoint == ("/bin/prometheus",)
    assert {e.name: e.value for e in prom.env} == {"A": "1", "EMPTY": "", "PRICE": "$5", "TZ": "UTC"}
    assert [(p.container, p.host, p.protocol, p.host_ip) for p in prom.ports] == [
        (9090, 9090, "tcp", "127.0.0.1"), (9100, None, "tcp", ""), (9091, 19091, "udp", "")]
    assert [(m.type, m.source, m.target, m.read_only, m.size) for m in prom.mounts] == [
        ("volume", "tsdb", "/prometheus", False, None), ("tmpfs", "", "/scratch", False, 64 * 2**20),
        ("volume", "logs", "/logs", True, None), ("tmpfs", "", "/run", False, 16 * 2**20)]
    assert [(f.target, f.source, oct(f.mode), f.secret) for f in prom.files] == [
        ("/etc/prometheus/prometheus.yml", "conf/prometheus.yml", "0o444", False),
        ("/etc/prometheus/rules.yml", "rules.yml", "0o440", False),
        ("/run/secrets/token", "token.txt", "0o444", True)]
    assert [(n.name, n.aliases) for n in prom.networks] == [("back", ("prom", "metrics", "prometheus"))]
    assert prom.labels == (("team", "ops"),) and prom.restart == "unless-stopped"
    assert prom.healthcheck is not None
    assert (prom.healthcheck.command, prom.healthcheck.interval, prom.healthcheck.timeout, prom.healthcheck.retries,
            prom.healthcheck.start_period) == (("CMD", "wget", "-q", "-O-", "localhost:9090/-/ready"), 90.0, 0.5, 3,
                                               10.0)
    assert (prom.user, prom.working_dir, prom.hostname, prom.init, prom.stop_signal, prom.stop_grace_period) == (
        "65534", "/prometheus", "prom", True, "SIGINT", 60.0)
    assert prom.cap_drop == ("ALL",)
    assert (prom.cpus, prom.memory, prom.memory_reservation) == (0.5, 512 * 2**20, 128 * 2**20)
    update = prom.update
    assert (update.parallelism, update.order, update.failure_action, update.min_healthy_time,
            update.healthy_deadline) == (1, "stop-first", "pause", 5.0, 120.0)
    assert prom.hosts == ("local",) and prom.self_heal is False
    alert = desired.service("alert")
    assert alert.network_mode == "none" and alert.networks == ()
    assert alert.depends_on[0].service == "prom" and alert.depends_on[0].condition == "started"
    assert alert.healthcheck is not None and alert.healthcheck.command == ("CMD-SHELL", "wget -q localhost:9093/-/ready")
    assert [(n.name, n.internal, n.labels) for n in desired.networks] == [("back", True, (("tier", "back"),))]
    assert [(v.name, v.labels) for v in desired.volumes] == [("logs", ()), ("tsdb", (("keep", "yes"),))]


def test_a_service_without_networks_joins_the_stacks_default_network_by_its_name(tmp_path: Path) -> None:
    desired = load(stack(tmp_path, "name: s\nservices:\n  web: {image: nginx, container_name: www, healthcheck: {test: [CMD, 'true']}}\n"
                                   "  db: {image: postgres, depends_on: {web: {condition: service_healthy}}}\n"))
    assert [n.name for n in desired.networks] == ["default"]
    assert [(n.name, n.aliases) for n in desired.service("web").networks] == [("default", ("web", "www"))]
    assert desired.service("db").depends_on[0].condition == "healthy"


@pytest.mark.parametrize(("compose", "message"), [
    ("services:\n  web:\n    image: a\n    build: .\n",
     "compose.yaml:4:5: services.web.build: gitops deploys images, it does not build them: build the image in CI, "
     "push it, and reference it by tag in image:"),
    ("services:\n  web: {build: .}\n",
     "compose.yaml:2:9: services.web.build: gitops deploys images, it does not build them: build the image in CI, "
     "push it, and reference it by tag in image:"),
    ("services:\n  web: {image: a, links: [db]}\n",
     "compose.yaml:2:19: services.web.links: links are legacy: services on one network reach each other by service "
     "name already; remove links"),
    ("services:\n  web: {image: a, extends: {file: b.yaml, service: x}}\n",
     "compose.yaml:2:19: services.web.extends: extends is not supported: write the fields out, or use a second "
     "compose file listed in the Project's spec.compose (files are merged in order)"),
    ("services:\n  web: {image: a, sysctls: {net.core.somaxconn: 1024}}\n",
     "compose.yaml:2:19: services.web.sysctls: sysctls are not supported yet; gitops cannot represent it yet, and "
     "dropping it would deploy something else than the file says; remove it"),
    ("services:\n  web: {image: a, deploy: {mode: global}}\n",
     "compose.yaml:2:28: services.web.deploy.mode: only replicated services map onto gitops (mode: global needs "
     "Swarm); remove mode"),
    ("services:\n  web: {image: a, deploy: {update_config: {delay: 10s}}}\n",
     "compose.yaml:2:44: services.web.deploy.update_config.delay: gitops moves to the next batch once the previous "
     "one has been healthy for minHealthyTime; use monitor (it becomes minHealthyTime) and remove delay"),
    ("services:\n  web: {image: a, deploy: {rollback_config: {parallelism: 1}}}\n",
     "compose.yaml:2:28: services.web.deploy.rollback_config: gitops rolls a failed update back by itself, with the "
     "update's order and parallelism; remove rollback_config"),
    ("services:\n  web:\n    image: a\n    ports: ['8000-8010:8000-8010']\n",
     "compose.yaml:4:13: services.web.ports[0]: port ranges are not supported: publish each port on its own line"),
    ("services:\n  web:\n    image: a\n    volumes: [/data]\n",
     "compose.yaml:4:15: services.web.volumes[0]: an anonymous volume is not supported: name it (data:/data) and "
     "declare it under volumes:"),
    ("services:\n  web:\n    image: a\n    volumes: ['~/x:/x']\n",
     "compose.yaml:4:15: services.web.volumes[0]: a path in a home folder depends on the machine; use a path inside "
     "the repository (./...) or an absolute host path"),
    ("services:\n  web:\n    image: a\n    volumes: ['data:/x']\n",
     "compose.yaml:4:15: services.web.volumes[0]: volume 'data' is not declared under the top-level volumes:"),
    ("services:\n  a: {image: a}\n  web:\n    image: a\n    depends_on:\n      a: {condition: "
     "service_completed_successfully}\n",
     "compose.yaml:6:10: services.web.depends_on.a: service_completed_successfully is not supported until gitops "
     "runs one-shot jobs; run the job in CI or in the service's entrypoint"),
    ("services:\n  web:\n    image: a\n    container_name: w\n    deploy: {replicas: 2}\n",
     "compose.yaml:4:21: services.web.container_name: one name cannot belong to several replicas; remove "
     "container_name (the service name is a network alias)"),
    ("services:\n  web:\n    image: a\n    environment: [TOKEN]\n",
     "compose.yaml:4:19: services.web.environment.TOKEN has no value: gitops never passes on its own environment (a "
     "plan must not depend on the machine that makes it); give a value, or ${TOKEN} with the variable in the .env "
     "file"),
    ("services:\n  web: {image: a, network_mode: 'service:db'}\n",
     "compose.yaml:2:33: services.web.network_mode: 'service:db' is not supported (gitops names containers itself); "
     "put both services on one network instead"),
    ("services:\n  web: {image: a, restart: 'on-failure:3'}\n",
     "compose.yaml:2:28: services.web.restart: 'on-failure:3' is not supported; use no, always, on-failure or "
     "unless-stopped (a retry count is not supported)"),
    ("services:\n  web: {image: a, networks: [front]}\nnetworks:\n  front: {external: true}\n",
     "compose.yaml:4:21: networks.front.external: external network refused by policy rule 'external-network' (a "
     "network gitops does not manage may join the container to other applications' traffic); if this is intended, "
     "add 'external-network' to spec.policy.allow of the Project"),
    ("services:\n  web: {image: a, deploy: {placement: {constraints: ['node.role == manager']}}}\n",
     "compose.yaml:2:54: services.web.deploy.placement.constraints[0]: only node.labels.KEY == VALUE maps onto "
     "gitops (a Host label selector); for host names use x-gitops: {placement: {hosts: [...]}}"),
    ("services:\n  web: {image: a, imagee: b}\n",
     "compose.yaml:2:19: services.web.imagee: unknown field 'imagee'; did you mean 'image'?"),
    ("services:\n  web: {image: a, x-gitops: {replicas: 3}}\n",
     "compose.yaml:2:30: services.web.x-gitops.replicas: unknown setting; x-gitops takes pullPolicy, selfHeal, "
     "placement, healthyDeadline and minHealthyTime"),
    ("include: [other.yaml]\nservices:\n  web: {image: a}\n",
     "compose.yaml:1:1: include: include is not supported: list the files in the Project's spec.compose (merged in "
     "order)"),
])
def test_what_cannot_map_is_an_error_with_the_way_out(tmp_path: Path, compose: str, message: str) -> None:
    root = stack(tmp_path, "name: s\n" + compose)
    found = errors(root)
    shifted = message.split(":", 2)
    expected = f"compose.yaml:{int(shifted[1]) + 1}:{shifted[2]}"  # "name: s" is line 1
    assert expected in found, found


def test_interpolation_reads_the_env_file_beside_the_compose_file_and_never_the_environment(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TAG", "from-the-reconcilers-environment")
    compose = ("name: s\nservices:\n  web:\n    image: 'nginx:${TAG}'\n"
               "    environment: {A: '${A:-a}', B: '${B-b}', C: '${C:+set}', D: '$$HOME', E: '${E:?E is needed}'}\n")
    assert errors(stack(tmp_path, compose)) == [
        "compose.yaml:4:12: services.web.image: variable TAG is not set: set it in the .env file beside the compose "
        "file or in a declared env file, or give a default with ${TAG:-value}",
        "compose.yaml:5:78: services.web.environment.E: variable E is required: E is needed"]
    root = tmp_path / "repo"
    (root / ".env").write_text("TAG=1.27\nB=\nC=x\nE=e  # a comment\n")
    web = load(root).service("web")
    assert web.image == "nginx:1.27"
    assert {e.name: e.value for e in web.env} == {"A": "a", "B": "", "C": "set", "D": "$HOME", "E": "e"}


def test_a_project_lists_stacks_merged_in_order_with_env_files_and_profiles(tmp_path: Path) -> None:
    project = PROJECT + ("spec:\n  compose:\n    - files: [stack/base.yaml, stack/prod.yaml]\n"
                         "      envFiles: [stack/prod.env]\n      profiles: [tools]\n")
    base = ("services:\n  web:\n    image: 'web:${TAG}'\n    environment: {A: '1', B: '2'}\n    ports: ['80']\n"
            "    volumes: ['data:/d']\n    command: [a, b]\n  adminer: {image: adminer, profiles: [tools]}\n"
            "  debug: {image: busybox, profiles: [debug]}\nvolumes: {data: {}}\n")
    prod = ("services:\n  web:\n    environment: [B=3, C=4]\n    ports: ['443']\n    volumes: ['data:/d:ro']\n"
            "    command: [c]\n    deploy: {replicas: 3}\n")
    root = write_files(tmp_path / "repo", {"project.yaml": project, "stack/base.yaml": base, "stack/prod.yaml": prod,
                                          "stack/prod.env": "TAG=2\n", "stack/.env": "TAG=ignored\n"})
    desired = load(root)
    assert [s.name for s in desired.services] == ["adminer", "web"]
    web = desired.service("web")
    assert web.image == "web:2" and web.replicas == 3 and web.command == ("c",)
    assert {e.name: e.value for e in web.env} == {"A": "1", "B": "3", "C": "4"}
    assert [p.container for p in web.ports] == [80, 443]
    assert [(m.target, m.read_only) for m in web.mounts] == [("/d", True)]


def test_a_compose_file_the_project_does_not_list_is_an_error(tmp_path: Path) -> None:
    project = PROJECT + "spec:\n  compose:\n    - files: [a.yaml]\n"
    root = write_files(tmp_path / "repo", {"project.yaml": project, "a.yaml": "services: {web: {image: a}}\n",
                                          "old/docker-compose.yml": "services: {x: {image: b}}\n"})
    assert errors(root) == ["old/docker-compose.yml: a compose file that the Project's spec.compose does not list "
                            "(project.yaml); list it there, or rename it if it is not for gitops"]


def test_the_project_name_comes_from_the_project_manifest_or_the_compose_name(tmp_path: Path) -> None:
    assert errors(stack(tmp_path, "services: {web: {image: a}}\n")) == [
        "compose.yaml:1:1: the project has no name: add name: to the compose file, or a Project manifest (a "
        "checkout's folder name is not stable enough to name what gitops owns)"]
    root = write_files(tmp_path / "two", {"a/compose.yaml": "name: one\nservices: {web: {image: a}}\n",
                                         "b/compose.yaml": "name: two\nservices: {db: {image: b}}\n"})
    assert errors(root) == ["b/compose.yaml:1:1: the compose files name different projects (a/compose.yaml: one, "
                            "b/compose.yaml: two); give them one name, or add a Project manifest"]
    (root / "project.yaml").write_text(PROJECT)
    assert load(root).project.name == "test"


def test_a_name_declared_in_compose_and_in_a_manifest_is_an_error_naming_both(tmp_path: Path) -> None:
    root = stack(tmp_path, "name: test\nservices:\n  web: {image: a}\n", web_DOT_yaml=service("web"))
    assert errors(root) == ["compose.yaml:3:3: services.web: Service 'web' is already defined at web.yaml:4; "
                            "names must be unique per kind"]


def test_checks_and_policy_report_at_the_compose_field(tmp_path: Path) -> None:
    compose = ("name: s\nservices:\n  web:\n    image: a\n    privileged: true\n    volumes: ['/etc:/host-etc']\n"
               "    deploy: {placement: {constraints: ['node.labels.zone == us']}}\n")
    found = errors(stack(tmp_path, compose))
    assert found == [
        "compose.yaml:5:17: services.web.privileged: privileged: true refused by policy rule 'privileged' (a "
        "privileged container is root on the host); if this is intended, add 'privileged' to spec.policy.allow of "
        "the Project",
        "compose.yaml:6:14: services.web.volumes: bind mount of /etc refused by policy rule 'host-path' (bind mounts "
        "are only allowed below the host paths the Project lists); if this is intended, add /etc or a folder above "
        "it to spec.policy.allowHostPaths of the Project",
        "compose.yaml:6:14: services.web.volumes: bind mount of /etc refused by policy rule 'sensitive-bind-mount' "
        "(bind-mounting this host path exposes or lets the container change the host); if this is intended, add "
        "'sensitive-bind-mount' to spec.policy.allow of the Project",
        "compose.yaml:7:25: services.web.deploy.placement: there are no Host manifests, so no host has these labels "
        "(the local engine, used as the one host, has none); declare the hosts with their labels, or remove the "
        "selector"], found
    placed = "name: s\nservices:\n  web:\n    image: a\n    deploy: {placement: {constraints: ['node.labels.zone == us']}}\n"
    assert errors(stack(tmp_path / "b", placed, host_DOT_yaml=HOST)) == [
        "compose.yaml:5:25: services.web.deploy.placement: no Host has these labels, so the service would run nowhere"]


def test_files_delivered_from_a_folder_are_not_read_as_manifests(tmp_path: Path) -> None:
    compose = "name: s\nservices:\n  prom:\n    image: p\n    volumes: ['./prometheus:/etc/prometheus:ro']\n"
    root = stack(tmp_path, compose, prometheus__prometheus_DOT_yml="global: {scrape_interval: 15s}\n",
                 prometheus__rules_DOT_yml="groups: []\n")
    assert [f.target for f in load(root).service("prom").files] == ["/etc/prometheus/prometheus.yml",
                                                                    "/etc/prometheus/rules.yml"]


WELL_KNOWN = {
    # a database, an app and a proxy (the shape of the awesome-compose nginx-flask-mysql example)
    "proxy-app-db": ("""\
        name: shop
        services:
          proxy:
            image: nginx:1.27
            ports: ["80:80"]
            volumes: [./nginx/default.conf:/etc/nginx/conf.d/default.conf:ro]
            depends_on: [backend]
          backend:
            image: shop/backend:1.4
            environment: {DB_HOST: db, DB_PASSWORD_FILE: /run/secrets/db-password}
            secrets: [db-password]
            depends_on:
              db: {condition: service_healthy}
          db:
            image: mariadb:11
            environment: {MARIADB_ROOT_PASSWORD_FILE: /run/secrets/db-password, MARIADB_DATABASE: shop}
            secrets: [db-password]
            volumes: [db-data:/var/lib/mysql]
            healthcheck:
              test: ["CMD", "healthcheck.sh", "--connect", "--innodb_initialized"]
              interval: 10s
              timeout: 5s
              retries: 5
        volumes:
          db-data: {}
        secrets:
          db-password: {file: db/password.txt}
        """, {"nginx/default.conf": "server { listen 80; }\n", "db/password.txt": "hunter2\n"},
        ["network default", "volume db-data", "db[0]", "backend[0]", "proxy[0]"]),
    # a monitoring stack (prometheus + grafana + node-exporter, as in the dockprom style)
    "monitoring": ("""\
        name: monitoring
        services:
          prometheus:
            image: prom/prometheus:v2.53.0
            command: ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.retention.time=200h"]
            volumes: ["./prometheus:/etc/prometheus", "prometheus_data:/prometheus"]
            restart: unless-stopped
            expose: ["9090"]
            networks: [monitor-net]
          grafana:
            image: grafana/grafana:11.0.0
            environment:
              - GF_SECURITY_ADMIN_USER=${ADMIN_USER:-admin}
              - GF_USERS_ALLOW_SIGN_UP=false
            volumes: ["grafana_data:/var/lib/grafana", "./grafana/provisioning:/etc/grafana/provisioning"]
            ports: ["3000:3000"]
            networks: [monitor-net]
            depends_on: [prometheus]
          nodeexporter:
            image: prom/node-exporter:v1.8.1
            command: ["--path.rootfs=/host"]
            restart: unless-stopped
            expose: ["9100"]
            networks: [monitor-net]
        networks:
          monitor-net: {driver: bridge}
        volumes:
          prometheus_data: {}
          grafana_data: {}
        """, {"prometheus/prometheus.yml": "global: {scrape_interval: 15s}\n",
              "grafana/provisioning/datasources/ds.yml": "apiVersion: 1\ndatasources: []\n"},
        ["network monitor-net", "volume grafana_data", "volume prometheus_data", "nodeexporter[0]", "prometheus[0]",
         "grafana[0]"]),
    # a CMS with its database (the shape of the official WordPress example)
    "cms": ("""\
        name: blog
        services:
          wordpress:
            image: wordpress:6.5
            restart: always
            ports: ["8080:80"]
            environment:
              WORDPRESS_DB_HOST: db
              WORDPRESS_DB_USER: ${DB_USER}
              WORDPRESS_DB_PASSWORD: ${DB_PASSWORD}
              WORDPRESS_DB_NAME: exampledb
            volumes: [wordpress:/var/www/html]
          db:
            image: mysql:8.0
            restart: always
            environment:
              MYSQL_DATABASE: exampledb
              MYSQL_USER: ${DB_USER}
              MYSQL_PASSWORD: ${DB_PASSWORD}
              MYSQL_RANDOM_ROOT_PASSWORD: '1'
            volumes: [db:/var/lib/mysql]
        volumes:
          wordpress:
          db:
        """, {".env": "DB_USER=exampleuser\nDB_PASSWORD=examplepass\n"},
        ["network default", "volume db", "volume wordpress", "db[0]", "wordpress[0]"]),
}


@pytest.mark.parametrize("name", WELL_KNOWN)
def test_compose_files_in_the_style_of_well_known_examples_validate_and_plan(tmp_path: Path, name: str) -> None:
    compose, extra, creates = WELL_KNOWN[name]
    root = write_files(tmp_path / "repo", {"compose.yaml": textwrap.dedent(compose), **extra})
    assert run_gitops("validate", str(root), tmp=tmp_path).returncode == 0
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"hosts": [{"host": "local", "reachable": True, "containers": [], "networks": [],
                                            "volumes": []}]}))
    planned = run_gitops("plan", str(root), "--observed", str(empty), "--format", "json", tmp=tmp_path)
    assert planned.returncode == 0, planned.stderr
    steps = json.loads(planned.stdout)["steps"]
    shown = [f"{s['kind']} {s['name']}" if s["kind"] != "service" else f"{s['name']}[{s['slot']}]" for s in steps]
    assert sorted(shown) == sorted(creates) and {s["action"] for s in steps} == {"create"}


def _refusal_cases() -> list[tuple[str, str, str]]:
    """(compose text, the refused field's path, its message) for every entry of the refusal tables."""
    cases = []
    for key, message in r.SERVICE.items():
        cases.append((f"name: s\nservices:\n  web:\n    image: a\n    {key}: 1\n", f"services.web.{key}", message))
    for key, message in r.DEPLOY.items():
        value = "global" if key == "mode" else "1"
        cases.append((f"name: s\nservices:\n  web:\n    image: a\n    deploy:\n      {key}: {value}\n",
                      f"services.web.deploy.{key}", message))
    for table, where in ((r.UPDATE, "update_config"), (r.PLACEMENT, "placement"), (r.HEALTHCHECK, None),
                         (r.RESOURCES, "resources.limits"), (r.RESERVATIONS, "resources.reservations")):
        for key, message in table.items():
            if not message:
                continue
            if where is None:
                text = f"name: s\nservices:\n  web:\n    image: a\n    healthcheck:\n      {key}: 1s\n"
                path = f"services.web.healthcheck.{key}"
            else:
                nested = "".join(f"{'  ' * (3 + i)}{part}:\n" for i, part in enumerate(where.split(".")))
                text = (f"name: s\nservices:\n  web:\n    image: a\n    deploy:\n{nested}"
                        f"{'  ' * (3 + len(where.split('.')))}{key}: 1\n")
                path = f"services.web.deploy.{where}.{key}"
            cases.append((text, path, message))
    cases.append(("name: s\ninclude: [a.yaml]\nservices:\n  web: {image: a}\n", "include", r.TOP["include"]))
    return cases


@pytest.mark.parametrize(("compose", "path", "message"), _refusal_cases(), ids=lambda v: v if "\n" not in v else "")
def test_every_refused_field_gives_its_message_at_its_line(tmp_path: Path, compose: str, path: str,
                                                           message: str) -> None:
    line = compose.splitlines().index(next(x for x in compose.splitlines() if x.strip().startswith(
        path.rsplit(".", 1)[-1] + ":"))) + 1
    found = errors(stack(tmp_path, compose))
    assert [e for e in found if e.startswith(f"compose.yaml:{line}:")] == [
        next(e for e in found if f": {path}: {message}" in e)], found


@pytest.mark.parametrize(("short", "expected"), [
    ("8080:80", (80, 8080, "tcp", "")), ("80:80/udp", (80, 80, "udp", "")), ("80", (80, None, "tcp", "")),
    ("127.0.0.1:8080:80", (80, 8080, "tcp", "127.0.0.1")), ("127.0.0.1::80", (80, None, "tcp", "127.0.0.1")),
    ("[::1]:8080:80", (80, 8080, "tcp", "::1")),
])
def test_short_port_syntax(tmp_path: Path, short: str, expected: tuple[object, ...]) -> None:
    web = load(stack(tmp_path, f"name: s\nservices:\n  web:\n    image: a\n    ports: ['{short}']\n")).service("web")
    assert [(p.container, p.host, p.protocol, p.host_ip) for p in web.ports] == [expected]


def test_env_files_are_read_with_compose_rules(tmp_path: Path) -> None:
    root = stack(tmp_path, "name: s\nservices:\n  web:\n    image: a\n    env_file: app.env\n"
                           "    environment: {B: from-environment}\n",
                 _DOT_env="HOST=db\n", app_DOT_env='export A="x y"\nB=from-file\nD=val # a comment\nC=${HOST}-z\n')
    web = load(root).service("web")
    assert {e.name: e.value for e in web.env} == {"A": "x y", "B": "from-environment", "C": "db-z", "D": "val"}
    (root / "app.env").write_text("A='unterminated\n")
    assert errors(root) == ["app.env:1:1: unterminated single-quoted value: add the closing '"]


@pytest.mark.parametrize(("service", "message"), [
    ("x-gitops: true", "compose.yaml:5:15: services.web.x-gitops: expected object, got boolean true"),
    ("healthcheck: {disable: true}",
     "compose.yaml:5:18: services.web.healthcheck: turning off the image's own HEALTHCHECK is not supported yet "
     "(Docker would still run it); remove the healthcheck to keep the image's, or give a test"),
    ("volumes: ['./conf:/conf:z']",
     "compose.yaml:5:15: services.web.volumes[0]: mode z is not supported (SELinux relabels and propagation are not "
     "mapped); use ro or rw"),
    ("volumes: [{type: volume, source: d, target: /d, volume: {nocopy: true}}]\nvolumes: {d: {}}",
     "compose.yaml:5:15: services.web.volumes[0]: volume.nocopy and bind.create_host_path are not supported; remove "
     "them"),
    ("volumes: ['.:/app']",
     "compose.yaml:5:15: services.web.volumes[0]: '.' is the stack's own folder or above it: its .env (the "
     "variables, often passwords) and compose files would be copied into the container; bind a subfolder or the "
     "files the service needs"),
    ("depends_on: {db: {condition: service_started, restart: true}}\n  db: {image: b}",
     "compose.yaml:5:22: services.web.depends_on.db: required: false and restart: true are not supported (gitops does "
     "not restart dependents when a dependency is replaced); remove them"),
    ("container_name: db\n  db: {image: b}",
     "compose.yaml:5:21: services.web.container_name: 'db' is already the name of service db; container names must "
     "be unique"),
    ("volumes: ['Data:/a']\nvolumes: {Data: {}}",
     "compose.yaml:6:11: volumes.Data: 'Data' is not valid: Lower-case letters, digits, '-', '_' and '.', starting and "
     "ending with a letter or digit, at most 63 characters."),
])
def test_settings_compose_would_apply_are_never_dropped_or_merged_silently(tmp_path: Path, service: str,
                                                                          message: str) -> None:
    (conf := tmp_path / "repo" / "conf").mkdir(parents=True)
    (conf / "x").write_text("x\n")
    lines = service.split("\n")
    body = "\n".join([f"    {lines[0]}", *lines[1:]])
    found = errors(stack(tmp_path, f"name: s\nservices:\n  web:\n    image: a\n{body}\n"))
    assert message in found, found


def test_an_override_file_beside_the_compose_file_is_merged_as_compose_does(tmp_path: Path) -> None:
    root = stack(tmp_path, "name: s\nservices:\n  web: {image: 'a:1', environment: {A: '1'}}\n",
                 compose_DOT_override_DOT_yaml="services:\n  web: {image: 'a:2', environment: {B: '2'}}\n")
    web = load(root).service("web")
    assert web.image == "a:2" and {e.name: e.value for e in web.env} == {"A": "1", "B": "2"}


def test_a_dependency_left_out_by_profiles_is_named(tmp_path: Path) -> None:
    root = stack(tmp_path, "name: s\nservices:\n  web: {image: a, depends_on: [mail]}\n"
                           "  mail: {image: m, profiles: [mail]}\n")
    assert errors(root) == ["compose.yaml:3:31: services.web.depends_on: mail is only in profiles mail, which are "
                            "not selected; select one in the Project's spec.compose profiles"]


def test_one_mistake_is_reported_once(tmp_path: Path) -> None:
    """A stack with an error does not also make its config files manifests, nor lose its name."""
    root = stack(tmp_path, "name: s\nservices:\n  prom:\n    image: p\n    imagee: q\n"
                           "    volumes: ['./prometheus:/etc/prometheus']\n",
                 prometheus__prometheus_DOT_yml="global: {}\n", prometheus__ds_DOT_yml="apiVersion: 1\n")
    assert errors(root) == ["compose.yaml:5:5: services.prom.imagee: unknown field 'imagee'; did you mean 'image'?"]
    (root / "compose.yaml").write_text("name: s\nservices:\n  prom: {image: [\n")
    found = errors(root)
    assert len(found) == 1 and found[0].startswith("compose.yaml:4:1: invalid YAML"), found


def test_external_networks_and_volumes_are_used_by_their_docker_names_and_never_made(tmp_path: Path) -> None:
    project = ("apiVersion: gitops/v1\nkind: Project\nmetadata: {name: s}\n"
               "spec: {policy: {allow: [external-network, external-volume]}}\n")
    root = stack(tmp_path, "services:\n  web:\n    image: a\n    networks: [proxy, default]\n"
                           "    volumes: [shared:/data]\nnetworks:\n  proxy: {external: true, name: traefik_proxy}\n"
                           "volumes:\n  shared: {external: true}\n", project_DOT_yaml=project)
    desired = load(root)
    web = desired.service("web")
    assert [(n.name, n.external) for n in web.networks] == [("proxy", "traefik_proxy"), ("default", "")]
    assert [(m.source, m.external) for m in web.mounts] == [("shared", "shared")]
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"hosts": [{"host": "local", "reachable": True, "containers": [], "networks": [],
                                            "volumes": []}]}))
    planned = json.loads(run_gitops("plan", str(root), "--observed", str(empty), "--format", "json",
                                    tmp=tmp_path).stdout)
    assert sorted(f"{s['kind']} {s['name']}" for s in planned["steps"]) == ["network default", "service web"]
    assert {a["rule"] for a in planned["allowed_by_policy"]} == {"external-network", "external-volume"}


@pytest.mark.parametrize(("spec", "message"), [
    ("{external: true, driver: overlay}", "spec.driver: an external network is not created or removed by gitops, "
                                          "so driver would not be applied; remove it"),
    ("{dockerName: other}", "spec.dockerName: only an external network has a Docker name of its own (gitops names "
                            "its networks PROJECT_NAME); add external: true or remove it"),
])
def test_an_external_network_takes_no_settings_for_making_one(repo, spec: str, message: str) -> None:
    project = PROJECT + "spec: {policy: {allow: [external-network]}}\n"
    root = repo({"project.yaml": project, "net.yaml": f"apiVersion: gitops/v1\nkind: Network\nmetadata: {{name: n}}\n"
                                                      f"spec: {spec}\n"}, project=False)
    assert [e.split(": ", 1)[1] for e in errors(root)] == [message]


def test_a_label_selector_without_any_host_manifest_is_an_error(tmp_path: Path) -> None:
    """The implicit local host has no labels: a selector would silently place the service there anyway."""
    root = stack(tmp_path, "name: s\nservices:\n  web:\n    image: a\n"
                           "    deploy: {placement: {constraints: ['node.labels.zone == us']}}\n")
    assert errors(root) == [
        "compose.yaml:5:25: services.web.deploy.placement: there are no Host manifests, so no host has these "
        "labels (the local engine, used as the one host, has none); declare the hosts with their labels, or remove "
        "the selector"]


def test_secret_ownership_is_refused_rather_than_dropped(tmp_path: Path) -> None:
    """Files are delivered owned by root: a uid/gid the service asks for would silently not apply."""
    root = stack(tmp_path, "name: s\nservices:\n  web:\n    image: a\n    secrets: [{source: t, uid: '1000'}]\n"
                           "secrets:\n  t: {file: ./t.txt}\n", t_DOT_txt="x\n")
    assert errors(root) == ["compose.yaml:5:27: services.web.secrets[0].uid: unknown field 'uid' (allowed: mode, "
                            "source, target)"]
