"""The waiting room's hand-written wire encoding of a waiting fan's message equals the protobuf library's."""

from __future__ import annotations

import pytest

from queue_svc.domain import (
    EXACT_POSITIONS,
    QueueTicketView,
    StoredTicket,
    TicketState,
    displayed_position,
    displayed_wait,
)
from queue_svc.servicer import TicketRenderer, render_ticket
from tixpb.v1 import queue_pb2


@pytest.mark.parametrize("position", [1, 127, 128, 300, 16_384, 2_000_000])
@pytest.mark.parametrize("wait", [None, 0.0, 1.0, 127.0, 128.0, 86_400.0, 4e9])
def test_a_waiting_fans_message_is_encoded_as_the_library_would(position, wait):
    view = QueueTicketView("7c1a4a4e-5d3b-4a59-9a55-1b6f8f0d1e2a", 12, TicketState.WAITING, position, wait, 1.5e9,
                           None, None)
    ticket = StoredTicket(view.ticket_id, 12, "fan", 99, 1.5e9, None, None)
    renderer = TicketRenderer()
    wire = renderer.prefix(ticket) + renderer.body(view)
    assert queue_pb2.QueueTicket.FromString(wire) == render_ticket(view)
    expected = render_ticket(view)
    expected.ClearField("ticket_id")
    expected.ClearField("event_id")
    expected.ClearField("join_time")
    assert renderer.body(view) == expected.SerializeToString()


def test_displayed_waits_are_whole_seconds_then_two_significant_figures():
    assert [displayed_wait(s) for s in (None, 0, 0.2, 59.1, 89.5, 94, 1234, 56_789)] == [
        None, 0.0, 1.0, 60.0, 90.0, 94.0, 1200.0, 57_000.0
    ]


def test_positions_are_exact_near_the_front_then_rounded_up_to_two_significant_figures():
    assert [displayed_position(p) for p in (1, 99, 100, 101, 109, 110, 999, 1000, 1001, 1234, 12_345, 99_999)] == [
        1, 99, 100, 110, 110, 110, 1000, 1000, 1100, 1300, 13_000, 100_000
    ]
    shown = [displayed_position(p) for p in range(1, 200_001)]
    assert shown[:EXACT_POSITIONS] == list(range(1, EXACT_POSITIONS + 1))  # the front sees every step
    assert shown == sorted(shown)  # moving up never shows a place further back
    assert all(p <= s <= p * 1.1 for p, s in enumerate(shown, start=1))  # never better than real, at most 10% worse
    # A line moving 10 places a step: how many of 20,000 fans see their figure change in one step.
    changed = sum(displayed_position(p) != displayed_position(p + 10) for p in range(1, 20_001))
    assert changed < 2_100
