"""The write time ("t") that migration 004 adds to every notification payload."""

from __future__ import annotations

import json

from zapjobs_sse.server.live.bridge import ChangeSet


def test_write_times_are_collected_and_payloads_without_one_still_decode() -> None:
    payloads = [
        json.dumps({"k": "run", "ids": ["a"], "t": 1764353000.125}),
        json.dumps({"k": "log", "ids": ["b"]}),  # from a trigger older than 004
        json.dumps({"k": "worker", "ids": ["w"], "t": "not a number"}),
        json.dumps({"k": "definitions", "t": 1764353001}),
    ]
    changes = ChangeSet.decode(payloads)
    assert changes.written_at == [1764353000.125, 1764353001.0]
    assert changes.runs == {"a"} and changes.log_runs == {"b"} and changes.workers == {"w"}
    assert changes.undecodable == 0 and changes.stats
