"""The soak's judgement (issue 12 item 7), on made-up stores: an accepted command whose events
are missing is lost; a command whose events are stored twice, a resubmission that caused
anything, a refused command with effects, or a message applied twice downstream are
"applied twice"; the projection must show each subject's last accepted phase."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from infra.soak.chaos import TARGETS, Chaos, parse_targets
from infra.soak.checks import Row, nothing_lost, nothing_twice
from infra.soak.load import Submission, store_of
from contracts.commands import RecordInfusion, RegisterCentre


def accepted(key: str, original: str, *events: tuple[str, str], resent: tuple[str, ...] = (),
             subject: str = "S-1", phase: str | None = None) -> Submission:
    return Submission(key, "RecordInfusion", "infusion", subject, phase=phase, command_ids=[original, *resent],
                      outcome="accepted", original=original, events=list(events))


def row(causation: str | None, stream: str, event_type: str, store: str = "infusion", subject: str = "S-1",
        n: int = 0) -> Row:
    return Row(store, f"e-{causation}-{stream}-{event_type}-{n}", event_type, stream, causation, subject)


INFUSED = ("infusion-S-1", "infusion.ProductInfused")


class TestNothingLost:
    def test_every_accepted_command_with_its_events_stored_applied_and_shown_passes(self):
        subs = [accepted("k1", "c1", INFUSED, phase="infused")]
        check = nothing_lost(subs, [row("c1", *INFUSED)], [], {"S-1": "infused"})
        assert check.passed, check.problems

    def test_an_accepted_command_whose_event_is_not_stored_is_lost(self):
        subs = [accepted("k1", "c1", INFUSED)]
        check = nothing_lost(subs, [row("c9", *INFUSED)], [], {})
        assert not check.passed and "k1: accepted, but 1 of its events are not stored" in check.problems[0]

    def test_an_event_a_consumer_has_not_applied_is_lost(self):
        check = nothing_lost([], [], [("assessment", "infusion", "infusion.ProductInfused", "e1")], {})
        assert check.problems == ["assessment has not applied infusion.ProductInfused e1 of infusion"]

    def test_the_projection_must_show_the_last_accepted_phase(self):
        subs = [accepted("k1", "c1", INFUSED, phase="infused")]
        assert not nothing_lost(subs, [row("c1", *INFUSED)], [], {"S-1": "released"}).passed
        assert not nothing_lost(subs, [row("c1", *INFUSED)], [], {}).passed
        # beyond it only when a later command's outcome is not known
        assert not nothing_lost(subs, [row("c1", *INFUSED)], [], {"S-1": "assessed"}).passed
        unknown = Submission("k2", "RecordResponseAssessment", "assessment", "S-1", phase="assessed",
                             command_ids=["c2"])
        assert nothing_lost([*subs, unknown], [row("c1", *INFUSED)], [], {"S-1": "assessed"}).passed

    def test_a_registration_must_have_stored_its_patient(self):
        reg = Submission("r1", "RegisterPatient", "enrollment", "S-1", via="http", phase="registered",
                         command_ids=["http:0"], outcome="accepted")
        assert not nothing_lost([reg], [], [], {"S-1": "registered"}).passed
        stored = row(None, "subject-S-1", "enrollment.PatientRegistered", store="enrollment")
        assert nothing_lost([reg], [stored], [], {"S-1": "registered"}).passed

    def test_an_outcome_naming_a_command_never_sent_under_the_key_is_a_problem(self):
        subs = [accepted("k1", "c1", INFUSED)]
        subs[0].command_ids = ["c0"]
        assert "never sent under the key" in nothing_lost(subs, [row("c1", *INFUSED)], [], {}).problems[0]


class TestNothingTwice:
    def test_resubmissions_that_changed_nothing_pass(self):
        subs = [accepted("k1", "c1", INFUSED, resent=("c2", "c3"))]
        check = nothing_twice(subs, [row("c1", *INFUSED)])
        assert check.passed and "3 submissions of 1 commands" in check.detail

    def test_an_event_stored_twice_for_one_command_is_applied_twice(self):
        subs = [accepted("k1", "c1", INFUSED)]
        check = nothing_twice(subs, [row("c1", *INFUSED, n=1), row("c1", *INFUSED, n=2)])
        assert not check.passed
        assert any("events beyond its outcome's" in p for p in check.problems)

    def test_a_resubmission_that_caused_anything_is_applied_twice(self):
        subs = [accepted("k1", "c1", INFUSED, resent=("c2",))]
        check = nothing_twice(subs, [row("c1", *INFUSED), row("c2", *INFUSED)])
        assert check.problems == ["k1: its resubmission c2 caused [('infusion-S-1', 'infusion.ProductInfused')]"]

    def test_a_refused_command_may_cause_only_its_refusal(self):
        refused = Submission("k1", "RecordInfusion", "infusion", "S-1", command_ids=["c1"], outcome="refused",
                             reason_code="NOT_RELEASED", original="c1")
        assert nothing_twice([refused], [row("c1", "command-c1", "common.CommandRejected")]).passed
        assert not nothing_twice([refused], [row("c1", *INFUSED)]).passed

    def test_an_upstream_event_applied_twice_downstream_is_found(self):
        rows = [row("e-up", "assessment-S-1", "assessment.InfusionNoted", store="assessment", n=i) for i in (1, 2)]
        check = nothing_twice([], rows)
        assert check.problems == ["assessment: 2 assessment.InfusionNoted on assessment-S-1 caused by one message e-up"]

    def test_chain_heads_are_not_counted(self):
        rows = [row("x", "chain-infusion", "common.ChainHeadRecorded", n=i) for i in (1, 2)]
        assert nothing_twice([], rows).passed

    def test_a_patient_registered_twice_is_applied_twice(self):
        reg = Submission("r1", "RegisterPatient", "enrollment", "S-1", via="http", command_ids=["http:0", "http:1"],
                         outcome="accepted")
        rows = [row(None, "subject-S-1", "enrollment.PatientRegistered", store="enrollment", n=i) for i in (1, 2)]
        assert not nothing_twice([reg], rows).passed


class TestLoad:
    def test_a_command_is_judged_by_the_service_whose_topic_it_travels_on(self):
        assert store_of(RegisterCentre(centre_id="IT-1", name="x", country="IT")) == "enrollment"
        assert store_of(RecordInfusion(subject_id="S-0000000000AB", coi_id="W0001250000011",
                                       infused_at="2025-01-01T10:00:00Z")) == "infusion"


class FakeSystem:
    """The processes a killer sees: real ones (sleep), so the SIGKILL is real."""

    def __init__(self) -> None:
        self.procs = {name: subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
                      for name in ("enrollment", "projection")}
        self.broker = self.pg = None
        self._down: set[str] = set()
        self.restarts: dict[str, int] = {}


class TestKiller:
    def test_targets_are_named_by_group_or_name(self):
        assert parse_targets("all") == TARGETS
        assert parse_targets("services,postgres")[-1] == "postgres" and "broker" not in parse_targets("services")
        with pytest.raises(ValueError, match="unknown kill target 'kafka'"):
            parse_targets("kafka")

    def test_each_kill_is_a_sigkill_of_a_live_target_counted_per_target(self):
        system = FakeSystem()
        try:
            chaos = Chaos(system, 1.0, seed=7, targets=("enrollment", "projection", "broker"), say=lambda _: None)
            first = chaos.kill_one()
            assert first is not None and first.target in ("enrollment", "projection")
            assert system.procs[first.target].wait(5) == -signal.SIGKILL
            second = chaos.kill_one()  # only the other one still runs; the broker is not there
            assert second is not None and {first.target, second.target} == {"enrollment", "projection"}
            system.procs[second.target].wait(5)
            assert chaos.kill_one() is None
            assert chaos.kills_by_target == {"enrollment": 1, "projection": 1, "broker": 0}
        finally:
            for p in system.procs.values():
                if p.poll() is None:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait()


class TestProducer:
    async def test_a_late_failure_on_a_replaced_producer_leaves_its_successor_running(self, monkeypatch):
        # Found by the soak's own run: every failed send stopped whatever producer was current,
        # so the sends in flight on a new one failed and stopped the next: none got through again.
        from infra.soak import load as soak_load

        class Producer:
            def __init__(self) -> None:
                self.stopped = False

            async def start(self) -> None:
                pass

            async def stop(self) -> None:
                self.stopped = True

        monkeypatch.setattr(soak_load, "new_producer", lambda bootstrap: Producer())
        load = soak_load.Load(bootstrap="127.0.0.1:1", database_url="postgresql://x", urls={},
                              credential=("celltrail-cli", "t"), run_id="R")
        first = await load._get_producer()
        await load._drop_producer(first)  # its send failed: let go
        second = await load._get_producer()
        await load._drop_producer(first)  # another send that failed on the first, reported late
        assert await load._get_producer() is second
        await load.close()
        assert first.stopped and second.stopped  # close() lets both go
