"""The system under test: a whole `System` (as `celltrail demo` starts it) in a temporary
home, stopped whatever happens; SIGTERM is treated as Ctrl-C so the clean-up always runs.

Embedded PostgreSQL and Tansu unless DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS are set. The
home is deleted after a clean run and kept, with the service logs, after a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from infra.tooling.supervisor import RunInfo, System


class _Terminated(KeyboardInterrupt):
    pass


def _on_sigterm(signum, frame):
    raise _Terminated()


class BenchSystem:
    def __init__(self, tool: str = "bench", **system: Any) -> None:
        """`tool`: the `celltrail` command this runs for (also `soak`); `system`: more of
        `System`'s options."""
        self.tool = tool
        self.home = Path(tempfile.mkdtemp(prefix=f"celltrail-{tool}-"))
        self.system = System(self.home, fixed_ports=False, ephemeral=True, **system)
        self.embedded_postgres = not os.environ.get("DATABASE_URL")
        self.embedded_broker = not os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        self.keep_logs = False  # set by the caller when a check failed
        self._previous_term = None

    @property
    def where(self) -> str:
        return (("embedded PostgreSQL" if self.embedded_postgres else "external PostgreSQL") + " + "
                + ("embedded Tansu" if self.embedded_broker else "external Kafka"))

    def __enter__(self) -> "BenchSystem":
        self._previous_term = signal.signal(signal.SIGTERM, _on_sigterm)
        return self

    def start(self) -> RunInfo:
        return self.system.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None and not issubclass(exc_type, KeyboardInterrupt):
            self.keep_logs = True
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the clean-up finish
        try:
            self.system.stop()
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, self._previous_term)
        if self.keep_logs:
            print(f"celltrail {self.tool}: service logs kept in {self.home / 'logs'}", file=sys.stderr)
        else:
            shutil.rmtree(self.home, ignore_errors=True)
