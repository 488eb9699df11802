"""Forward bookkeeping without peers: acknowledgements recorded in batches, and the slots that
let the next study to a destination follow at once."""

from __future__ import annotations

import threading
import time
from unittest import mock

import pytest
from sqlalchemy import select

from hounsfield.archive.context import Archive
from hounsfield.db import engine as db
from hounsfield.db.tables import forward, forward_instance
from hounsfield.sites import forward_state as state
from hounsfield.sites.devices import Device
from hounsfield.workers.forward import _Slots

CT = "1.2.840.10008.5.1.4.1.1.2"


def _forward(archive: Archive) -> int:
    with db.write(archive.engine) as conn:
        return state.open_forward(conn, archive.resolve(None).pk, "1.2.3", "", "HQ", "test")


def _states(archive: Archive, pk: int) -> dict[str, str]:
    with db.read(archive.engine) as conn:
        rows = conn.execute(
            select(forward_instance.c.sop_iuid, forward_instance.c.state).where(
                forward_instance.c.forward_pk == pk
            )
        ).all()
    return {str(sop): str(st) for sop, st in rows}


def test_record_sent_counts_new_repeated_and_resent_instances(archive: Archive) -> None:
    pk = _forward(archive)
    state.record_sent(archive.engine, pk, [(CT, "1.1"), (CT, "1.2"), (CT, "1.1")])
    state.record_sent(archive.engine, pk, [(CT, "1.2"), (CT, "1.3")])
    row = state.get_forward(archive.engine, pk)
    assert row is not None and (row.sent, row.refused) == (3, 0)
    with db.write(archive.engine) as conn:  # a commitment report refused two of them
        conn.execute(
            forward_instance.update()
            .where(forward_instance.c.sop_iuid.in_(["1.1", "1.3"]))
            .values(state=state.REFUSED)
        )
        conn.execute(forward.update().values(sent=1, refused=2))
    state.record_sent(archive.engine, pk, [(CT, "1.1"), (CT, "1.3"), (CT, "1.4")])
    row = state.get_forward(archive.engine, pk)
    assert row is not None and (row.sent, row.refused) == (4, 0)
    assert set(_states(archive, pk).values()) == {state.ACKED}


def test_acks_are_written_several_at_a_time_and_all_on_close(archive: Archive) -> None:
    pk = _forward(archive)
    writes: list[int] = []
    real = state.record_sent

    def counted(engine: object, forward_pk: int, pairs: list[tuple[str, str]]) -> None:
        writes.append(len(pairs))
        real(engine, forward_pk, pairs)  # type: ignore[arg-type]

    with mock.patch.object(state, "record_sent", counted), state.Acks(archive.engine, pk) as acks:
        for n in range(10):
            acks.add([(CT, f"2.{n}")])
    assert sum(writes) == 10 and len(writes) < 10
    assert max(writes) <= state.Acks.LIMIT
    assert len(_states(archive, pk)) == 10


def test_acks_never_leave_more_than_limit_unrecorded(archive: Archive) -> None:
    pk = _forward(archive)
    gate = threading.Event()
    real = state.record_sent

    def slow(engine: object, forward_pk: int, pairs: list[tuple[str, str]]) -> None:
        gate.wait(10)
        real(engine, forward_pk, pairs)  # type: ignore[arg-type]

    added = 0
    with mock.patch.object(state, "record_sent", slow), state.Acks(archive.engine, pk) as acks:

        def sender() -> None:
            nonlocal added
            for n in range(8):
                acks.add([(CT, f"3.{n}")])
                added += 1

        thread = threading.Thread(target=sender)
        thread.start()
        time.sleep(0.5)  # the first write hangs: sending stops at the limit
        assert added == state.Acks.LIMIT
        gate.set()
        thread.join(10)
    assert added == 8 and len(_states(archive, pk)) == 8


def test_acks_report_a_failed_write_on_close(archive: Archive) -> None:
    pk = _forward(archive)
    failing = mock.patch.object(state, "record_sent", side_effect=RuntimeError("database gone"))
    with failing, pytest.raises(RuntimeError, match="database gone"):
        with state.Acks(archive.engine, pk) as acks:
            acks.add([(CT, "4.1")])
        pytest.fail("close did not raise")


def test_the_next_study_waits_in_line_for_the_slot() -> None:
    slots, device = _Slots(), Device("HQ", "127.0.0.1", 104)
    assert slots.take(device, 1) == 1
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(slots.take(device, 1, 10.0)))
    waiter.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert slots.take(device, 1, 10.0) == 0  # one waits already: come back later
    assert time.monotonic() - started < 0.5
    slots.give(device, 1)
    waiter.join(5)
    assert got == [1]
    assert slots.take(device, 1, 0.05) == 0  # waited its time, still taken
    slots.give(device, 1)
    assert slots.take(device, 1) == 1
