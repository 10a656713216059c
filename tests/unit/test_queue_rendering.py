"""The waiting room's hand-written wire encoding of a waiting fan's message equals the protobuf library's."""

from __future__ import annotations

import pytest

from queue_svc.domain import QueueTicketView, StoredTicket, TicketState, displayed_wait
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
