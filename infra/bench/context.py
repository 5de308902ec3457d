"""What every measurement of one run shares: the running system, one producer (ours:
`infra.runtime.messaging.new_producer`), the run id and the raw baseline once measured."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer

from infra.runtime.access.signing import RecordSigner
from infra.tooling.supervisor import RunInfo, System


@dataclass
class Run:
    info: RunInfo
    system: System  # to stop and restart a service (the apply-rate measurement)
    run_id: str
    partitions: int
    producer: AIOKafkaProducer
    poll_s: float
    # The CLI's principal and token its commands are submitted with; the services' signers,
    # since the bench stands in for their relays when it produces synthetic events.
    credential: tuple[str, str] = ("", "")
    signers: dict[str, RecordSigner] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)  # the baseline's figures, once measured
    _centres: int = 0

    @property
    def database_url(self) -> str:
        return self.info.database_url

    @property
    def bootstrap(self) -> str:
        return self.info.kafka_bootstrap_servers

    def url(self, service: str) -> str:
        return self.info.urls[service]

    def token(self) -> str:
        """The bearer token of the CLI's principal (`credential`), which the bench calls the
        services as."""
        return self.credential[1]

    def new_name(self, what: str) -> str:
        """A name unique to this run, e.g. for a centre or a hospital record number prefix."""
        self._centres += 1
        return f"BENCH-{self.run_id}-{what}{self._centres}"
