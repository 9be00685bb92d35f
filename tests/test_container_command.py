"""The container's start command works, and every deployment runs the same pre-start step.

No Docker engine runs in CI, so the image's command is run here instead: the CMD and ENV are
read from the Dockerfile itself, so a change there is tested the day it is made. The commands
of the compose `migrate` service and the Kubernetes migration Job are read from their files
and compared with `make run`'s.
"""

import json
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from project.devservers.live import Server
from tests.live_server import request, running_gunicorn

BASE_DIR = Path(__file__).resolve().parent.parent
DOCKERFILE = BASE_DIR / "Dockerfile"
K8S_DIR = BASE_DIR / "deploy" / "k8s"
IMAGE_VENV = "/opt/venv"


# --- reading the deployment files ------------------------------------------------------------


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for every instruction, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw_line in path.read_text().splitlines():
        line = raw_line.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(index for index, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def image_env() -> dict[str, str]:
    """The final stage's ENV, in order; `$VAR` and `${VAR}` expanded from earlier values."""
    env: dict[str, str] = {}
    for keyword, arguments in final_stage(dockerfile_instructions()):
        if keyword != "ENV":
            continue
        for pair in shlex.split(arguments):
            name, separator, value = pair.partition("=")
            assert separator, f"use the ENV NAME=value form: {pair!r}"
            env[name] = re.sub(r"\$\{?(\w+)\}?", lambda match: env.get(match.group(1), ""), value)
    return env


def image_cmd() -> list[str]:
    commands = [arguments for keyword, arguments in final_stage(dockerfile_instructions()) if keyword == "CMD"]
    assert commands, "the Dockerfile's final stage has no CMD"
    command = json.loads(commands[-1])  # the exec form is a JSON array
    assert isinstance(command, list)
    return [str(part) for part in command]


def image_workdir() -> str:
    workdirs = [arguments for keyword, arguments in final_stage(dockerfile_instructions()) if keyword == "WORKDIR"]
    return workdirs[-1]


def makefile_prestart_command() -> list[str]:
    """The pre-start line of `make run`, with the virtualenv prefix dropped."""
    recipe: list[str] = []
    in_run = False
    for line in (BASE_DIR / "Makefile").read_text().splitlines():
        if re.match(r"^run\s*:", line):
            in_run = True
        elif in_run and line.startswith("\t"):
            recipe.append(line.strip())
        elif in_run:
            break
    prestart = [line for line in recipe if "manage.py prestart" in line]
    assert len(prestart) == 1, f"`make run` should run `manage.py prestart` once: {recipe}"
    return [re.sub(r"^\$\(BIN\)/", "", word) for word in shlex.split(prestart[0])]


def as_argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


def load_yaml(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


def k8s_manifests() -> dict[tuple[str, str], dict[str, Any]]:
    manifests: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and "metadata" in document:
                manifests[(document["kind"], document["metadata"]["name"])] = document
    return manifests


def kustomization() -> dict[str, Any]:
    return load_yaml(K8S_DIR / "kustomization.yaml")


def pod_containers(manifest: dict[str, Any], key: str = "containers") -> list[dict[str, Any]]:
    containers = manifest["spec"]["template"]["spec"].get(key, [])
    assert isinstance(containers, list)
    return containers


# --- the container's start command -----------------------------------------------------------


@pytest.fixture
def container_server(transactional_db: None, tmp_path: Path) -> Iterator[Server]:
    """The image's CMD with the image's ENV, run from the source tree (the image's WORKDIR).

    Only what a deployment supplies is added: the secret and the servers' URLs (the test
    database and Redis). A free local port, a private metrics directory and two workers
    replace the image's fixed port and directory and the per-CPU worker count; this
    virtualenv replaces the image's.
    """
    env = image_env()
    env["PATH"] = env["PATH"].replace(f"{IMAGE_VENV}/bin", str(Path(sys.executable).parent))
    env.update(
        {
            "SECRET_KEY": "pT4$wq9Zr!xL2mN7bV0cK5hG8jD3fS6aQ1eR4tY7uI0oP9lK2jH5gF8dS3aZ6xC",
            "ALLOWED_HOSTS": "postline.example.com,127.0.0.1",
            "EMAIL_HOST": "smtp.example.com",
            "FRONTEND_URL": "https://postline.example.com",
            "DEBUG": "false",
        }
    )
    env.pop("BIND")  # a free port on 127.0.0.1 instead of 0.0.0.0:8000
    env.pop("PROMETHEUS_MULTIPROC_DIR")
    with running_gunicorn(tmp_path, command=image_cmd(), env=env) as server:
        yield server


def test_dockerfile_sets_the_production_environment() -> None:
    env = image_env()
    assert env["DJANGO_ENV"] == "production"
    assert env["BIND"] == "0.0.0.0:8000"  # a container listens on all interfaces
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")  # noqa: S108  -- an emptyDir in Kubernetes
    assert env["PYTHONUNBUFFERED"] == env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"].startswith(f"{IMAGE_VENV}/bin:")
    assert image_cmd() == ["gunicorn", "-c", "project/gunicorn.conf.py"]
    # WORKDIR /app holds the source tree, so the CMD's relative path is from the repository root.
    assert image_workdir() == "/app"
    assert (BASE_DIR / image_cmd()[2]).is_file()


def test_container_command_serves_readyz_healthz_and_metrics_in_production(container_server: Server) -> None:
    base_url = container_server.base_url
    status, _, body = request(f"{base_url}/readyz")
    assert (status, json.loads(body)) == (200, {"status": "ok", "checks": {"database": "ok", "cache": "ok"}})
    assert request(f"{base_url}/healthz")[0] == 200
    metrics_status, _, metrics = request(f"{base_url}/metrics")
    assert metrics_status == 200
    assert b"postline_http_requests_total" in metrics
    # Production settings are in force: everything else redirects to https.
    assert request(f"{base_url}/api/docs/")[0] == 301


# --- one pre-start step everywhere -----------------------------------------------------------


def test_compose_and_kubernetes_migrations_run_the_make_run_prestart_command() -> None:
    prestart = makefile_prestart_command()
    assert prestart == ["python", "manage.py", "prestart"]

    compose = load_yaml(BASE_DIR / "docker-compose.yml")
    assert as_argv(compose["services"]["migrate"]["command"]) == prestart

    job = k8s_manifests()[("Job", "postline-migrate")]
    (migrate,) = pod_containers(job)
    assert [*migrate.get("command", []), *migrate.get("args", [])] == prestart


def test_compose_app_waits_for_the_migration_and_runs_the_image_cmd() -> None:
    services = load_yaml(BASE_DIR / "docker-compose.yml")["services"]
    assert services["app"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "command" not in services["app"]
    assert services["app"]["image"] == services["migrate"]["image"]


def test_kubernetes_pods_run_one_image_and_the_web_pods_run_its_cmd() -> None:
    manifests = k8s_manifests()
    deployment = manifests[("Deployment", "postline")]
    job = manifests[("Job", "postline-migrate")]
    (web,) = pod_containers(deployment)
    assert "command" not in web
    assert "args" not in web
    images = {
        container["image"]
        for manifest in (deployment, job)
        for key in ("containers", "initContainers")
        for container in pod_containers(manifest, key)
    }
    (image,) = images
    name, _, tag = image.rpartition(":")
    assert tag not in {"", "latest"}
    assert kustomization()["images"] == [{"name": name, "newTag": tag}]


def test_kubernetes_ports_match_the_image() -> None:
    port = int(image_env()["BIND"].rpartition(":")[2])
    deployment = k8s_manifests()[("Deployment", "postline")]
    (web,) = pod_containers(deployment)
    assert [p["containerPort"] for p in web["ports"]] == [port]
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(port)


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {path.name for path in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {"secret.example.yaml"}
