"""Settings: one pydantic-settings class, read in bootstrap, never at import time."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.topology import SERVICES, http_port

# Default HTTP ports on loopback, one per service (override with HTTP_PORT).
DEFAULT_HTTP_PORTS = {name: http_port(name) for name in SERVICES}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    database_url: str = Field(alias="DATABASE_URL")
    kafka_bootstrap_servers: str = Field(alias="KAFKA_BOOTSTRAP_SERVERS")
    http_host: str = Field(default="127.0.0.1", alias="HTTP_HOST")
    http_port: int | None = Field(default=None, alias="HTTP_PORT")
    topic_partitions: int = Field(default=3, ge=1, alias="CELLTRAIL_TOPIC_PARTITIONS")
    relay_batch_size: int = Field(default=500, ge=1, alias="CELLTRAIL_RELAY_BATCH_SIZE")
    # The HTTP edge's admission (infra/runtime/admission.py): requests handled at a time, and
    # how long one more waits for a place before it is answered 503 SATURATED with Retry-After
    http_max_in_flight: int = Field(default=64, ge=1, le=10_000, alias="CELLTRAIL_HTTP_MAX_IN_FLIGHT")
    http_admission_wait_seconds: float = Field(default=1.0, ge=0, le=60, alias="CELLTRAIL_HTTP_ADMISSION_WAIT_SECONDS")
    relay_poll_seconds: float = Field(default=0.5, gt=0, alias="CELLTRAIL_RELAY_POLL_SECONDS")
    # How often each store's hash-chain head is recorded (and so published) as an event, when
    # events were chained since the last; docs/design.md, "Tamper-evident log".
    chain_head_seconds: float = Field(default=60.0, ge=0, alias="CELLTRAIL_CHAIN_HEAD_SECONDS")
    # How long the broker may hold a fetch open waiting for data. Kafka's default (500 ms)
    # adds up to half a second per hop; consumers here prefer latency over fewer requests.
    fetch_max_wait_ms: int = Field(default=20, ge=1, le=500, alias="CELLTRAIL_FETCH_MAX_WAIT_MS")
    # The consumer group's session: a consumer silent for this long is presumed dead and its
    # partitions handed to another. Kafka's client default (10 s) suits a cluster; Tansu also
    # holds a joining consumer for about half of it, so the embedded stack and the tests,
    # all on one machine, use a few seconds (infra/tooling/supervisor.py, tests/conftest.py).
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1_000, le=300_000,
                                          alias="CELLTRAIL_KAFKA_SESSION_TIMEOUT_MS")
    max_handler_attempts: int = Field(default=5, ge=1, alias="CELLTRAIL_MAX_HANDLER_ATTEMPTS")
    # Records per fetch, applied in one transaction.
    consumer_max_records: int = Field(default=500, ge=1, le=10_000, alias="CELLTRAIL_CONSUMER_MAX_RECORDS")
    # The keyring that encrypts enrollment's identity table: `id:key[,id:key...]`, each key 32
    # random bytes in base64, the first current (services/enrollment/adapters/identity_crypto.py).
    # No default: enrollment refuses to start without it; `celltrail up` generates one per home.
    identity_key: SecretStr | None = Field(default=None, alias="CELLTRAIL_IDENTITY_KEY")

    # The public half of the token signing key (Ed25519, PEM): services verify tokens, never
    # issue them. No default: `celltrail up` generates a key pair into its home. Unset, a
    # service accepts API keys only (docs/design.md, "Access").
    token_public_key: str | None = Field(default=None, alias="CELLTRAIL_TOKEN_PUBLIC_KEY")

    # Signed events (infra/runtime/access/signing.py): this service's Ed25519 key (32-byte
    # seed, base64), and every service's public key (`service:base64,...`). No default: a
    # service refuses to start without them; `celltrail up` generates a pair per service.
    service_key: SecretStr | None = Field(default=None, alias="CELLTRAIL_SERVICE_KEY")
    service_public_keys: str | None = Field(default=None, alias="CELLTRAIL_SERVICE_PUBLIC_KEYS")

    # Broker authentication (SASL, RFC 4422), e.g. SCRAM-SHA-512 against docker-compose's
    # Kafka, one user per service with write rights to its own topics only. Unset: none.
    kafka_sasl_mechanism: str | None = Field(default=None, alias="KAFKA_SASL_MECHANISM")
    kafka_sasl_username: str | None = Field(default=None, alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(default=None, alias="KAFKA_SASL_PASSWORD")

    def kafka_security(self) -> dict[str, str]:
        """aiokafka's keyword arguments for the broker's authentication (none when unset)."""
        if not self.kafka_sasl_mechanism:
            return {}
        if not self.kafka_sasl_username or self.kafka_sasl_password is None:
            raise ValueError("KAFKA_SASL_MECHANISM is set: KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are needed too")
        return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": self.kafka_sasl_mechanism,
                "sasl_plain_username": self.kafka_sasl_username,
                "sasl_plain_password": self.kafka_sasl_password.get_secret_value()}

    def port_for(self, service: str) -> int:
        return self.http_port or DEFAULT_HTTP_PORTS[service]
