"""What operators deploy with, checked as far as this machine can: the kustomize base as `kubectl
kustomize` renders it (and `kubernetes-validate --strict`), the compose file's structure, the image
definition's rules (and hadolint), and that the settings each of them gives are ones crazy-gary
accepts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from crazy_gary.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.fixture(scope="module")
def rendered() -> str:
    """The base as `kubectl kustomize` renders it."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: the kustomize base cannot be rendered here")
    return subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / "kubernetes")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


@pytest.fixture(scope="module")
def objects(rendered: str) -> dict[str, dict[str, Any]]:
    """The base's objects by kind."""
    found = [document for document in yaml.safe_load_all(rendered) if document]
    by_kind = {document["kind"]: document for document in found}
    assert len(by_kind) == len(found), "one object of each kind"
    return by_kind


def test_the_base_holds_what_a_deployment_needs(objects: dict[str, dict[str, Any]]) -> None:
    assert set(objects) == {"ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget"}
    deployment = objects["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert objects["Service"]["spec"]["selector"].items() <= labels.items()
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert (
        deployment["spec"]["replicas"] >= 2 and objects["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    )


def test_the_container_is_probed_bounded_and_unprivileged(objects: dict[str, dict[str, Any]]) -> None:
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert ports == {"http": 8000} and objects["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    sources = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert sources == {objects["ConfigMap"]["metadata"]["name"], objects["Secret"]["metadata"]["name"]}


def test_the_secret_holds_the_secrets_and_the_settings_are_accepted(
    objects: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = objects["Secret"]["stringData"]
    assert {"HUGGINGFACE_API_KEY", "CRAZY_GARY_API_KEYS"} <= set(secret)
    assert not {"HUGGINGFACE_API_KEY", "CRAZY_GARY_API_KEYS"} & set(objects["ConfigMap"]["data"])
    environment = {**objects["ConfigMap"]["data"], **secret}
    settings = _settings_from(environment, monkeypatch)
    assert set(settings.endpoints) == {"120b", "20b"} and settings.redis_url


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return compose


def test_compose_runs_two_replicas_behind_nginx_on_postgresql_and_redis() -> None:
    services = _compose()["services"]
    assert {"crazy-gary", "nginx", "postgres", "redis"} <= set(services)
    gateway = services["crazy-gary"]
    assert gateway["deploy"]["replicas"] == 2
    assert gateway["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert gateway["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert gateway["depends_on"]["redis"]["condition"] == "service_healthy"
    assert {"test"} <= set(services["postgres"]["healthcheck"]) and {"test"} <= set(
        services["redis"]["healthcheck"]
    )
    (mount,) = services["nginx"]["volumes"]
    assert (DEPLOY / mount.split(":")[0]).resolve() == (DEPLOY / "nginx.conf").resolve()
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert re.search(r"^\s*server crazy-gary:8000\b", nginx, re.M), "nginx's upstream is the compose service"
    assert re.search(r"^\s*listen 8080;", nginx, re.M) and services["nginx"]["ports"] == [
        "127.0.0.1:8080:8080"
    ]


def test_compose_settings_are_accepted_and_point_at_its_own_services(monkeypatch: pytest.MonkeyPatch) -> None:
    compose = _compose()
    environment = {
        name: re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(value))  # the defaults compose would use
        for name, value in compose["services"]["crazy-gary"]["environment"].items()
    }
    postgres = compose["services"]["postgres"]["environment"]
    credentials = (
        f"{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@postgres:5432/{postgres['POSTGRES_DB']}"
    )
    assert environment["CRAZY_GARY_DATABASE_URL"] == f"postgresql://{credentials}"
    assert environment["CRAZY_GARY_REDIS_URL"].startswith("redis://redis:6379")
    assert environment["HF_ENDPOINTS_API_URL"] == "http://simulator:8010/v2"
    settings = _settings_from(environment, monkeypatch)
    assert set(settings.endpoints) == {"120b", "20b"}


def test_the_image_is_slim_unprivileged_checked_and_without_build_tools() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)[1:]
    assert len(stages) == 2, "a build stage and the image"
    final = stages[-1]
    assert re.match(r"python:3\.\d+-slim\s*$", final.splitlines()[0])
    assert re.search(r"^USER 10001$", final, re.M)
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", final, re.M)
    assert (
        "uv" not in re.sub(r"/opt/venv", "", final.split("COPY --from=build")[0]) and "apt-get" not in final
    )
    assert 'ENTRYPOINT ["crazy-gary"]' in final
    assert "uv sync --frozen --no-dev" in stages[0]  # the lock file's dependencies, and only them
    pinned = re.search(r"uv==([\d.]+)", (DEPLOY.parent / "Makefile").read_text())
    assert pinned and f"uv=={pinned.group(1)}" in stages[0]


def _tool(name: str) -> str:
    """A checker the dev dependencies install beside the interpreter (hadolint, kubernetes-validate)."""
    return str(Path(sys.executable).parent / name)


def test_hadolint_finds_nothing_to_mend_in_the_image_definition() -> None:
    checked = subprocess.run(
        [_tool("hadolint"), "--no-color", str(DEPLOY / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_hadolint_would_say_so_of_a_bad_image_definition(tmp_path: Path) -> None:
    """The check can fail: an image that installs with apt-get and no pinned versions is refused."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    checked = subprocess.run(
        [_tool("hadolint"), "--no-color", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode != 0 and "DL3007" in checked.stdout


def test_the_manifests_are_valid_kubernetes_objects_strictly(rendered: str, tmp_path: Path) -> None:
    """`kubernetes-validate --strict`: every object against the Kubernetes schemas, no unknown field."""
    manifests = tmp_path / "base.yaml"
    manifests.write_text(rendered)
    checked = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", str(manifests)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("passed for resource") == len([d for d in yaml.safe_load_all(rendered) if d])
    broken = tmp_path / "broken.yaml"
    broken.write_text(rendered.replace("containers:", "containerz:", 1))
    refused = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", str(broken)], capture_output=True, text=True, timeout=120
    )
    assert refused.returncode != 0


def _settings_from(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in ("CRAZY_GARY_CONFIG", "CRAZY_GARY_SIMULATE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    from crazy_gary.config import load_settings

    return load_settings()
