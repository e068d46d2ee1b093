"""settings_drift.differences: a container's inspect JSON against the create request gitops builds.
Pure; the same comparison is exercised on the real engine by every Deployer pass and test_drift_docker."""

from __future__ import annotations

import copy

from gitops.hosts.settings_drift import differences

REQUEST = {
    "image": "local/web:1", "command": ["httpd", "-f"], "entrypoint": None,
    "environment": ["LOG=info", "DB=postgres://db"], "working_dir": "/srv", "user": None, "hostname": None,
    "labels": {"io.gitops.project": "shop", "io.gitops.service": "web"},
    "healthcheck": {"test": ["CMD", "true"]}, "stop_signal": None,
    "host_config": {
        "Mounts": [{"Type": "volume", "Source": "shop_data", "Target": "/data", "ReadOnly": False}],
        "RestartPolicy": {"Name": "unless-stopped"}, "Memory": 268435456, "Init": True,
        "PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
    },
    "networking_config": {"EndpointsConfig": {"shop_backend": {"Aliases": ["web"]}}},
}

INFO = {
    "Image": "sha256:abc",
    "Config": {"Image": "local/web:1", "Cmd": ["httpd", "-f"], "Entrypoint": None, "WorkingDir": "/srv",
               "Env": ["LOG=info", "DB=postgres://db", "PATH=/bin"], "Hostname": "0123456789ab", "User": "",
               "Labels": {"io.gitops.project": "shop", "io.gitops.service": "web", "maintainer": "image"},
               "Healthcheck": {"Test": ["CMD", "true"], "Interval": 200000000}},
    "HostConfig": {"Mounts": [{"Type": "volume", "Source": "shop_data", "Target": "/data"}],
                   "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0}, "Memory": 268435456,
                   "MemoryReservation": 0, "NanoCpus": 0, "Privileged": False, "CapAdd": None, "Devices": [],
                   "Init": True, "IpcMode": "private", "NetworkMode": "default", "Binds": None,
                   "PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}},
    "NetworkSettings": {"Networks": {"shop_backend": {}}},
}
IMAGE_ENV = ["PATH=/bin"]


def changed(**edits) -> dict:
    info = copy.deepcopy(INFO)
    for path, value in edits.items():
        target = info
        *parents, last = path.split("__")
        for p in parents:
            target = target[p]
        target[last] = value
    return info


def test_a_container_as_created_has_no_differences() -> None:
    assert differences(REQUEST, [], INFO, IMAGE_ENV) == ()


def test_env_changed_added_or_removed_is_named_without_its_value() -> None:
    assert differences(REQUEST, [], changed(Config__Env=["LOG=debug", "DB=postgres://db", "PATH=/bin"]),
                       IMAGE_ENV) == ("env.LOG",)
    assert differences(REQUEST, [], changed(Config__Env=INFO["Config"]["Env"] + ["DEBUG=1"]),
                       IMAGE_ENV) == ("env.DEBUG",)
    assert differences(REQUEST, [], changed(Config__Env=["LOG=info", "PATH=/bin"]), IMAGE_ENV) == ("env.DB",)
    # the image's own variable set to another value by hand
    assert differences(REQUEST, [], changed(Config__Env=["LOG=info", "DB=postgres://db", "PATH=/tmp"]),
                       IMAGE_ENV) == ("env.PATH",)


def test_ports_mounts_and_networks() -> None:
    assert differences(REQUEST, [], changed(HostConfig__PortBindings={"8080/tcp": [{"HostIp": "0.0.0.0",
                                                                                    "HostPort": "80"}]}),
                       IMAGE_ENV) == ("ports",)
    # a bind mount added with -v counts as much as one added with --mount
    assert differences(REQUEST, [], changed(HostConfig__Binds=["/etc:/host-etc:ro"]), IMAGE_ENV) == ("mounts",)
    assert differences(REQUEST, [], changed(HostConfig__Mounts=[]), IMAGE_ENV) == ("mounts",)
    assert differences(REQUEST, [], changed(HostConfig__Tmpfs={"/run": ""}), IMAGE_ENV) == ("mounts",)
    assert differences(REQUEST, [], changed(NetworkSettings__Networks={"bridge": {}}), IMAGE_ENV) == ("networks",)
    assert differences(REQUEST, ["shop_front"], INFO, IMAGE_ENV) == ("networks",)


def test_settings_that_widen_access_count_even_when_the_manifest_leaves_them_out() -> None:
    assert differences(REQUEST, [], changed(HostConfig__Privileged=True), IMAGE_ENV) == ("privileged",)
    assert differences(REQUEST, [], changed(HostConfig__CapAdd=["SYS_ADMIN"]), IMAGE_ENV) == ("capAdd",)
    assert differences(REQUEST, [], changed(HostConfig__PidMode="host"), IMAGE_ENV) == ("pid",)
    # Docker's own defaults for what the request left out are not differences
    assert differences(REQUEST, [], changed(HostConfig__IpcMode="shareable"), IMAGE_ENV) == ()


def test_image_command_restart_memory_and_healthcheck() -> None:
    assert differences(REQUEST, [], changed(Config__Image="local/web:2"), IMAGE_ENV) == ("image",)
    assert differences(REQUEST, [], changed(Config__Cmd=["sh"]), IMAGE_ENV) == ("command",)
    assert differences(REQUEST, [], changed(HostConfig__RestartPolicy={"Name": "no"}), IMAGE_ENV) == ("restart",)
    assert differences(REQUEST, [], changed(HostConfig__Memory=0), IMAGE_ENV) == ("memory",)
    assert differences(REQUEST, [], changed(Config__Healthcheck=None), IMAGE_ENV) == ("healthcheck",)
    several = changed(Config__Cmd=["sh"], HostConfig__Privileged=True)
    assert differences(REQUEST, [], several, IMAGE_ENV) == ("command", "privileged")
