"""docker-compose.yml against the code: services, commands, ports and environment.

No Docker engine is needed: the file is parsed with PyYAML and checked by small functions
that return a list of problems; each checker is also run on a deliberately broken compose
dict, so these tests can fail.
"""

from __future__ import annotations

import copy
import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.runtime.settings import DEFAULT_HTTP_PORTS, SERVICES, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
LOOPBACK = "127.0.0.1"


def load_compose(path: Path = COMPOSE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def settings_env_vars() -> set[str]:
    """The environment variables the code reads: the aliases of `Settings` fields."""
    return {f.alias or name.upper() for name, f in Settings.model_fields.items()}


# --- parsing helpers -----------------------------------------------------------------------
def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            key, _, value = str(item).partition("=")
            out[key] = value
        return out
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def command_of(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def parse_port(entry: Any) -> tuple[str | None, str | None, int]:
    """(host_ip, host_port, container_port) of one `ports` entry (short or long syntax)."""
    if isinstance(entry, dict):
        return entry.get("host_ip"), str(entry["published"]) if "published" in entry else None, int(entry["target"])
    text = str(entry).split("/")[0]
    m = re.fullmatch(r"(?:(\[[^\]]+\]|[^:]+):)?(?:(\d+):)?(\d+)", text)
    if not m:
        raise ValueError(f"unparseable port {entry!r}")
    ip, host_port, container = m.groups()
    if ip is not None and host_port is None and "." not in ip and not ip.startswith("["):
        ip, host_port = None, ip  # "8101:8101"
    return ip, host_port, int(container)


# --- checkers: each returns a list of problems ------------------------------------------------
def check_services(compose: dict[str, Any]) -> list[str]:
    problems = []
    services = compose.get("services", {})
    for name in SERVICES:
        svc = services.get(name)
        if svc is None:
            problems.append(f"{name}: no compose service")
            continue
        cmd = command_of(svc)
        expected = f"services.{name}.bootstrap"
        if cmd[:3] != ["python", "-m", expected]:
            problems.append(f"{name}: command {cmd} is not `python -m {expected}`")
            continue
        try:
            module = importlib.import_module(expected)
        except ImportError as exc:
            problems.append(f"{name}: {expected} is not importable: {exc}")
            continue
        if not callable(getattr(module, "main", None)):
            problems.append(f"{name}: {expected} has no main()")
        build = svc.get("build")
        dockerfile = build.get("dockerfile") if isinstance(build, dict) else None
        if dockerfile != "infra/Dockerfile":
            problems.append(f"{name}: not built from infra/Dockerfile ({build!r})")
    return problems


def check_ports(compose: dict[str, Any]) -> list[str]:
    problems = []
    services = compose.get("services", {})
    for name in SERVICES:
        svc = services.get(name, {})
        expected = DEFAULT_HTTP_PORTS[name]
        env_port = env_of(svc).get("HTTP_PORT")
        if env_port != str(expected):
            problems.append(f"{name}: HTTP_PORT={env_port!r}, expected {expected}")
        ports = [parse_port(p) for p in svc.get("ports", [])]
        if [c for _, _, c in ports] != [expected]:
            problems.append(f"{name}: publishes container ports {[c for _, _, c in ports]}, expected [{expected}]")
        if env_of(svc).get("HTTP_HOST") != "0.0.0.0":
            problems.append(f"{name}: HTTP_HOST must be 0.0.0.0 inside the container")
    return problems


def check_loopback_only(compose: dict[str, Any]) -> list[str]:
    problems = []
    for name, svc in compose.get("services", {}).items():
        for entry in svc.get("ports", []) or []:
            ip, _, container = parse_port(entry)
            if ip != LOOPBACK:
                problems.append(f"{name}: port {container} is published on {ip or 'every interface'}, "
                                f"not {LOOPBACK}")
    return problems


def check_env_vars_read(compose: dict[str, Any]) -> list[str]:
    """Every variable a CellTrail container sets is one the code reads."""
    known = settings_env_vars()
    problems = []
    for name, svc in compose.get("services", {}).items():
        if (svc.get("build") or {}) == {}:
            continue  # third-party images (kafka, postgres)
        for var in env_of(svc):
            if var not in known:
                problems.append(f"{name}: sets {var}, which nothing reads (known: {sorted(known)})")
        if name in SERVICES:
            for var in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
                if var not in env_of(svc):
                    problems.append(f"{name}: does not set required {var}")
    return problems


def check_token_public_key(compose: dict[str, Any]) -> list[str]:
    """Every service verifies tokens (docs/design.md, Access): each is given the public key,
    required from the environment, never a literal in the file."""
    problems = []
    for name in SERVICES:
        value = env_of(compose.get("services", {}).get(name, {})).get("CELLTRAIL_TOKEN_PUBLIC_KEY")
        if value is None:
            problems.append(f"{name}: no CELLTRAIL_TOKEN_PUBLIC_KEY, so it would accept no token")
        elif not re.fullmatch(r"\$\{CELLTRAIL_TOKEN_PUBLIC_KEY:\?[^}]+\}", value):
            problems.append(f"{name}: CELLTRAIL_TOKEN_PUBLIC_KEY is not required from the environment "
                            f"(${{CELLTRAIL_TOKEN_PUBLIC_KEY:?...}}): {value!r}")
    return problems


def check_depends_on(compose: dict[str, Any]) -> list[str]:
    expected = {"kafka": "service_healthy", "postgres": "service_healthy",
                "migrate": "service_completed_successfully"}
    problems = []
    for name in SERVICES:
        deps = compose.get("services", {}).get(name, {}).get("depends_on") or {}
        if not isinstance(deps, dict):
            problems.append(f"{name}: depends_on has no conditions")
            continue
        for dep, condition in expected.items():
            got = (deps.get(dep) or {}).get("condition")
            if got != condition:
                problems.append(f"{name}: depends_on {dep} condition {got!r}, expected {condition!r}")
    return problems


def check_kafka(compose: dict[str, Any]) -> list[str]:
    kafka = compose.get("services", {}).get("kafka")
    if kafka is None:
        return ["no kafka service"]
    problems = []
    if not str(kafka.get("image", "")).startswith("apache/kafka:"):
        problems.append(f"kafka image {kafka.get('image')!r} is not apache/kafka")
    env = env_of(kafka)
    roles = {r.strip() for r in env.get("KAFKA_PROCESS_ROLES", "").split(",")}
    if roles != {"broker", "controller"}:
        problems.append(f"KAFKA_PROCESS_ROLES={env.get('KAFKA_PROCESS_ROLES')!r}, expected broker,controller")
    node_id = env.get("KAFKA_NODE_ID", "")
    voters = env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "")
    if not node_id or not voters.startswith(f"{node_id}@"):
        problems.append(f"quorum voters {voters!r} do not name node {node_id!r}")
    controller = env.get("KAFKA_CONTROLLER_LISTENER_NAMES", "")
    listeners = {ls.split("://")[0]: ls.split("://")[1] for ls in env.get("KAFKA_LISTENERS", "").split(",") if "://" in ls}
    advertised = {ls.split("://")[0]: ls.split("://")[1]
                  for ls in env.get("KAFKA_ADVERTISED_LISTENERS", "").split(",") if "://" in ls}
    protocol_map = dict(p.split(":") for p in env.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "").split(",") if ":" in p)
    if controller not in listeners:
        problems.append(f"controller listener {controller!r} is not in KAFKA_LISTENERS")
    if voters and controller in listeners and not voters.endswith(":" + listeners[controller].rsplit(":", 1)[1]):
        problems.append("quorum voters do not use the controller listener's port")
    for name in listeners:
        if name not in protocol_map:
            problems.append(f"listener {name} has no security protocol")
    if "kafka:9092" not in advertised.values():
        problems.append("no advertised listener kafka:9092 for containers")
    if f"{LOOPBACK}:9094" not in advertised.values() and "localhost:9094" not in advertised.values():
        problems.append("no advertised listener on host port 9094")
    if env.get("KAFKA_INTER_BROKER_LISTENER_NAME") not in listeners:
        problems.append("inter-broker listener is not a listener")
    if str(env.get("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR")) != "1":
        problems.append("offsets topic replication factor must be 1 on a single node")
    if not kafka.get("healthcheck"):
        problems.append("kafka has no healthcheck")
    services = compose.get("services", {})
    for name in SERVICES:
        if env_of(services.get(name, {})).get("KAFKA_BOOTSTRAP_SERVERS") != "kafka:9092":
            problems.append(f"{name}: KAFKA_BOOTSTRAP_SERVERS is not kafka:9092")
    return problems


def check_broker_authentication(compose: dict[str, Any]) -> list[str]:
    """Issue 8, item 4: every client listener needs SASL, no ACL means no access, and each
    service signs in as itself and is granted WRITE on its own event topic only."""
    services = compose.get("services", {})
    env = env_of(services.get("kafka", {}))
    problems = []
    protocols = dict(p.split(":") for p in env.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "").split(",") if ":" in p)
    for listener, protocol in protocols.items():
        if listener != env.get("KAFKA_CONTROLLER_LISTENER_NAMES") and protocol != "SASL_PLAINTEXT":
            problems.append(f"listener {listener} is {protocol}, not SASL_PLAINTEXT")
    if env.get("KAFKA_AUTHORIZER_CLASS_NAME") != "org.apache.kafka.metadata.authorizer.StandardAuthorizer":
        problems.append("no ACL authorizer")
    if str(env.get("KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND")).lower() != "false":
        problems.append("a topic without ACLs would be open to everyone")
    acls = services.get("kafka-acls")
    script = " ".join(acls.get("command", [])) if acls else ""
    if not acls:
        problems.append("no kafka-acls job")
    for name in SERVICES:
        svc_env = env_of(services.get(name, {}))
        if svc_env.get("KAFKA_SASL_USERNAME") != name or not svc_env.get("KAFKA_SASL_PASSWORD"):
            problems.append(f"{name}: does not sign in to the broker as {name}")
        if svc_env.get("KAFKA_SASL_MECHANISM") != "PLAIN":
            problems.append(f"{name}: KAFKA_SASL_MECHANISM is not PLAIN")
        if f'user_{name}="' not in env.get("KAFKA_LISTENER_NAME_INTERNAL_PLAIN_SASL_JAAS_CONFIG", ""):
            problems.append(f"{name}: no broker user")
        if (services.get(name, {}).get("depends_on") or {}).get("kafka-acls", {}).get("condition") \
                != "service_completed_successfully":
            problems.append(f"{name}: does not wait for kafka-acls")
    # WRITE grants: only on one's own event topic (the projection's is `outcomes`), the
    # dead-letter topic, and the CLI's on command topics.
    writes = re.findall(r"acl (\S+) --operation Write(?: --operation \w+)* --topic (\S+)", script)
    if ("$$s", "celltrail.$$s.v1") not in writes or ("projection", "celltrail.outcomes.v1") not in writes:
        problems.append(f"no WRITE of a service on its own event topic in kafka-acls: {writes}")
    allowed = {("$$s", "celltrail.$$s.v1"), ("$$s", "celltrail.deadletter.v1"), ("projection", "celltrail.outcomes.v1"),
               ("cli", "celltrail.$$s.commands.v1")}
    problems += [f"kafka-acls grants WRITE {w}, which is not a service's own topic" for w in writes if w not in allowed]
    return problems


def check_postgres(compose: dict[str, Any]) -> list[str]:
    pg = compose.get("services", {}).get("postgres")
    if pg is None:
        return ["no postgres service"]
    problems = []
    env = env_of(pg)
    if not str(pg.get("image", "")).startswith("postgres:16"):
        problems.append(f"postgres image {pg.get('image')!r} is not postgres:16")
    if env.get("POSTGRES_HOST_AUTH_METHOD") == "trust":
        problems.append("POSTGRES_HOST_AUTH_METHOD=trust")
    if not re.fullmatch(r"\$\{POSTGRES_PASSWORD:\?[^}]+\}", env.get("POSTGRES_PASSWORD", "")):
        problems.append("POSTGRES_PASSWORD is not required from the environment (${POSTGRES_PASSWORD:?...})")
    if not pg.get("healthcheck"):
        problems.append("postgres has no healthcheck")
    for name, svc in compose.get("services", {}).items():
        url = env_of(svc).get("DATABASE_URL")
        if url is not None and "${POSTGRES_PASSWORD" not in url:
            problems.append(f"{name}: DATABASE_URL does not use POSTGRES_PASSWORD")
    return problems


def check_migrate(compose: dict[str, Any]) -> list[str]:
    migrate = compose.get("services", {}).get("migrate")
    if migrate is None:
        return ["no migrate service"]
    problems = []
    cmd = " ".join(command_of(migrate))
    if "from infra.runtime.db import migrate" not in cmd or "DATABASE_URL" not in cmd:
        problems.append(f"migrate command {cmd!r} does not run infra.runtime.db.migrate(DATABASE_URL)")
    if (migrate.get("depends_on") or {}).get("postgres", {}).get("condition") != "service_healthy":
        problems.append("migrate does not wait for a healthy postgres")
    if str(migrate.get("restart", "no")) != "no":
        problems.append("migrate is a one-shot job: restart must be 'no'")
    return problems


def check_dockerfile(compose: dict[str, Any], root: Path = ROOT) -> list[str]:
    problems = []
    for name, svc in compose.get("services", {}).items():
        build = svc.get("build")
        if not build:
            continue
        context = root / (build.get("context", ".") if isinstance(build, dict) else build)
        dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
        if not dockerfile.is_file():
            problems.append(f"{name}: {dockerfile} does not exist")
    return problems


CHECKERS = [check_broker_authentication, check_services, check_ports, check_loopback_only, check_env_vars_read,
            check_token_public_key, check_depends_on,
            check_kafka, check_postgres, check_migrate, check_dockerfile]


# --- the real file -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.mark.parametrize("checker", CHECKERS, ids=lambda c: c.__name__)
def test_compose_file(compose, checker):
    assert checker(compose) == []


def test_settings_aliases_are_the_documented_variables():
    known = settings_env_vars()
    assert {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "HTTP_HOST", "HTTP_PORT"} <= known
    assert all(v in {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "HTTP_HOST", "HTTP_PORT"}
               or v.startswith(("CELLTRAIL_", "KAFKA_SASL_")) for v in known)


def test_every_published_port_is_loopback(compose):
    published = [(name, parse_port(p)) for name, svc in compose["services"].items() for p in svc.get("ports", [])]
    assert published, "nothing is published"
    assert all(ip == LOOPBACK for _, (ip, _, _) in published)


def test_dockerfile_is_slim_non_root_without_dev_dependencies():
    text = (ROOT / "infra" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert re.search(r"pip install [^\n]*\.(\s|$)", text)
    pip_lines = [ln for ln in text.splitlines() if "pip install" in ln]
    assert pip_lines and not any("[test]" in ln or "-dev" in ln or "-e " in ln for ln in pip_lines)
    for path in ("pyproject.toml", "contracts", "services", "infra", "migrations"):
        assert re.search(rf"^COPY\s+{re.escape(path)}\b", text, re.M), f"Dockerfile does not copy {path}"


# --- the checkers catch mistakes --------------------------------------------------------------
def broken(compose: dict[str, Any], mutate) -> dict[str, Any]:
    copy_ = copy.deepcopy(compose)
    mutate(copy_)
    return copy_


BREAKAGES = {
    "missing service": (check_services, lambda c: c["services"].pop("infusion")),
    "wrong command module": (check_services,
                             lambda c: c["services"]["assessment"].update(command=["python", "-m", "services.nope.bootstrap"])),
    "wrong container port": (check_ports, lambda c: c["services"]["enrollment"].update(ports=["127.0.0.1:8101:9000"])),
    "wrong HTTP_PORT": (check_ports, lambda c: c["services"]["projection"]["environment"].update(HTTP_PORT="8101")),
    "port on every interface": (check_loopback_only, lambda c: c["services"]["enrollment"].update(ports=["8101:8101"])),
    "port on 0.0.0.0": (check_loopback_only, lambda c: c["services"]["postgres"].update(ports=["0.0.0.0:5432:5432"])),
    "unknown env var": (check_env_vars_read,
                        lambda c: c["services"]["manufacturing"]["environment"].update(KAFKA_BROKERS="kafka:9092")),
    "missing DATABASE_URL": (check_env_vars_read, lambda c: c["services"]["infusion"]["environment"].pop("DATABASE_URL")),
    "no token public key": (check_token_public_key,
                            lambda c: c["services"]["infusion"].update(environment={
                                k: v for k, v in c["services"]["infusion"]["environment"].items()
                                if k != "CELLTRAIL_TOKEN_PUBLIC_KEY"})),
    "literal token public key": (check_token_public_key,
                                 lambda c: c["services"]["projection"]["environment"].update(
                                     CELLTRAIL_TOKEN_PUBLIC_KEY="-----BEGIN PUBLIC KEY-----")),
    "no migrate condition": (check_depends_on, lambda c: c["services"]["assessment"]["depends_on"].pop("migrate")),
    "not apache kafka": (check_kafka, lambda c: c["services"]["kafka"].update(image="bitnami/kafka:3.9")),
    "zookeeper-style roles": (check_kafka, lambda c: c["services"]["kafka"]["environment"].update(KAFKA_PROCESS_ROLES="broker")),
    "trust auth": (check_postgres, lambda c: c["services"]["postgres"]["environment"].update(POSTGRES_HOST_AUTH_METHOD="trust")),
    "literal password": (check_postgres, lambda c: c["services"]["postgres"]["environment"].update(POSTGRES_PASSWORD="secret")),
    "migrate restarts": (check_migrate, lambda c: c["services"]["migrate"].update(restart="always")),
    "missing Dockerfile": (check_dockerfile,
                           lambda c: c["services"]["enrollment"].update(build={"context": ".", "dockerfile": "nope/Dockerfile"})),
}


@pytest.mark.parametrize("case", sorted(BREAKAGES))
def test_checker_detects(compose, case):
    checker, mutate = BREAKAGES[case]
    assert checker(compose) == []
    assert checker(broken(compose, mutate)), f"{checker.__name__} missed: {case}"


def test_checkers_on_a_small_broken_compose():
    small = {"services": {
        "enrollment": {"command": "python -m services.enrollment.bootstrap", "ports": ["8101:8101"],
                       "environment": ["DATABASE_URL=x", "HTTP_PORT=8100", "DEBUG=1"]},
        "kafka": {"image": "confluentinc/cp-kafka:7.6.0", "environment": {}},
    }}
    assert any("manufacturing" in p for p in check_services(small))
    assert any("HTTP_PORT" in p for p in check_ports(small))
    assert check_loopback_only(small) == ["enrollment: port 8101 is published on every interface, not 127.0.0.1"]
    assert check_kafka(small)
    assert check_postgres(small) == ["no postgres service"]


@pytest.mark.parametrize("entry, expected", [
    ("127.0.0.1:8101:8101", ("127.0.0.1", "8101", 8101)),
    ("8101:8101", (None, "8101", 8101)),
    ("8101", (None, None, 8101)),
    ("0.0.0.0:5432:5432/tcp", ("0.0.0.0", "5432", 5432)),
    ({"target": 8101, "published": 8101, "host_ip": "127.0.0.1"}, ("127.0.0.1", "8101", 8101)),
])
def test_parse_port(entry, expected):
    assert parse_port(entry) == expected
