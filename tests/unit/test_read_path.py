"""The read path's pure parts: validators, content negotiation, the form kept in Redis, stream frames, the full
view's pages and resuming from the feed's log."""

from __future__ import annotations

import gzip
import json

import brotli
import pytest
from hypothesis import given
from hypothesis import strategies as st

from event_svc.domain import (
    EventClock,
    SeatLayout,
    build_layout,
    decode_page_token,
    encode_page_token,
    full_view_page,
)
from event_svc.representations import (
    content_etag,
    encode,
    etag_matches,
    from_blob,
    map_etag,
    negotiate,
    to_blob,
)
from event_svc.watch_frames import (
    StreamFormat,
    changes_frame,
    heartbeat_frame,
    snapshot_frame,
)
from tests.factories import layout_rows
from tix import seatfeed
from tix.catalog import LayoutSeat
from tix.errors import InvalidArgument

# --- validators --------------------------------------------------------------------------------------------------


def test_a_maps_etag_is_its_version_while_the_feed_agrees():
    assert map_etag(42, EventClock(42, "7.0")) == 'W/"42"'
    assert map_etag(42, EventClock(0, "0.0")) == 'W/"42"'
    assert map_etag(42, None) == 'W/"42"'


def test_a_late_commit_or_a_catalog_edit_gives_the_same_version_another_etag():
    plain = map_etag(42, EventClock(42, "0.0"))
    late = map_etag(42, EventClock(40, "0.0"))  # a change that drew version 40 was published after 42
    edited = map_etag(42, EventClock(42, "0.3"))
    assert len({plain, late, edited}) == 3
    assert late.startswith('W/"42.')


def test_if_none_match_compares_weakly_and_accepts_lists_and_star():
    assert etag_matches('W/"5"', 'W/"5"')
    assert etag_matches('"5"', 'W/"5"')
    assert etag_matches('W/"4", W/"5"', 'W/"5"')
    assert etag_matches("*", 'W/"5"')
    assert not etag_matches('W/"4"', 'W/"5"')
    assert not etag_matches(None, 'W/"5"')


def test_content_etags_follow_the_bytes():
    assert content_etag(b"a") == content_etag(b"a")
    assert content_etag(b"a") != content_etag(b"b")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "identity"),
        ("", "identity"),
        ("gzip", "gzip"),
        ("gzip, deflate, br", "br"),
        ("br;q=0.5, gzip", "gzip"),
        ("br;q=0, gzip;q=0", "identity"),
        ("*", "br"),
        ("identity", "identity"),
        ("gzip;q=bogus, br", "br"),
    ],
)
def test_the_best_accepted_encoding_is_chosen(header, expected):
    assert negotiate(header) == expected


@given(st.text(max_size=80))
def test_any_accept_encoding_header_gets_an_answer(header):
    assert negotiate(header) in ("br", "gzip", "identity")


def test_a_representation_is_compressed_once_and_survives_redis():
    body = json.dumps({"rows": ["A" * 40] * 500}).encode()
    representation = encode(body, 'W/"9"', clock=EventClock(9, "1.0"), version=9, expires_at=123.0)
    assert gzip.decompress(representation.gzip) == body
    assert brotli.decompress(representation.brotli) == body
    assert len(representation.brotli) < len(body) // 10
    restored = from_blob(to_blob(representation), loaded_at=1.0)
    assert (restored.identity, restored.etag, restored.clock, restored.version, restored.expires_at) == (
        body, 'W/"9"', EventClock(9, "1.0"), 9, 123.0)
    with pytest.raises(ValueError):
        from_blob(b"not a blob", loaded_at=0)


# --- stream frames ------------------------------------------------------------------------------------------------


def _unchunk(frame: bytes) -> bytes:
    size, _, rest = frame.partition(b"\r\n")
    assert rest.endswith(b"\r\n")
    body = rest[:-2]
    assert int(size, 16) == len(body)
    return body


def test_a_change_is_an_sse_event_whose_id_is_its_version():
    message = seatfeed.SeatFeedMessage(7, 120, 118, (("101-1-4", "reserved"),))
    frame = _unchunk(changes_frame(StreamFormat.SSE, message)).decode()
    event, ident, data = frame.rstrip("\n").split("\n")
    assert (event, ident) == ("event: changes", "id: 120")
    assert json.loads(data.removeprefix("data: ")) == {
        "version": "120", "changes": {"changes": [{"seatId": "101-1-4", "status": "SEAT_STATUS_RESERVED"}]}}
    line = _unchunk(changes_frame(StreamFormat.NDJSON, message))
    assert line.endswith(b"\n")
    assert json.loads(line)["version"] == "120"


def test_a_snapshot_carries_its_feed_position_and_a_heartbeat_no_id():
    frame = _unchunk(snapshot_frame(StreamFormat.SSE, b'{"eventId":"7"}', 118)).decode()
    assert frame.startswith("event: snapshot\nid: 118\ndata: ")
    assert json.loads(frame.split("data: ", 1)[1]) == {"version": "118", "snapshot": {"eventId": "7"}}
    beat = _unchunk(heartbeat_frame(StreamFormat.SSE, 118)).decode()
    assert "id:" not in beat
    assert beat.startswith("event: heartbeat\n")


# --- the full view's pages ---------------------------------------------------------------------------------------


def _layout(sections: int, rows: int, seats: int) -> SeatLayout:
    return build_layout("hall", [LayoutSeat(**{k: v for k, v in r.items() if k != "layout_id"})
                                 for r in layout_rows("hall", sections, rows, seats)])


def test_pages_hold_whole_sections_within_the_seat_budget_and_chain_by_token():
    layout = _layout(10, 10, 10)  # 100 seats per section
    seen, token = [], ""
    while True:
        page = full_view_page(layout, section_id=None, page_size=0, page_token=token, max_seats=250)
        assert 1 <= len(page.section_indexes) <= 2
        seen += page.section_indexes
        token = page.next_page_token
        if not token:
            break
    assert seen == list(range(10))


def test_page_size_limits_sections_per_page():
    layout = _layout(10, 10, 10)
    page = full_view_page(layout, section_id=None, page_size=3, page_token="", max_seats=10_000)
    assert page.section_indexes == (0, 1, 2)
    assert decode_page_token(page.next_page_token, "hall") == 3


def test_a_named_section_is_one_page():
    layout = _layout(3, 2, 5)
    page = full_view_page(layout, section_id="S2", page_size=0, page_token="", max_seats=100)
    assert page.section_indexes == (1,)
    assert page.next_page_token == ""


def test_a_section_larger_than_one_answer_is_refused_with_a_reason():
    layout = _layout(2, 10, 50)  # 500 seats per section
    with pytest.raises(InvalidArgument) as refused:
        full_view_page(layout, section_id=None, page_size=0, page_token="", max_seats=400)
    assert refused.value.reason == "SEAT_MAP_TOO_LARGE"
    assert "compact view" in refused.value.message


@pytest.mark.parametrize("token", ["garbage", encode_page_token("another-layout", 1), encode_page_token("hall", 99)])
def test_foreign_or_forged_page_tokens_are_invalid_arguments(token):
    with pytest.raises(InvalidArgument) as refused:
        full_view_page(_layout(2, 2, 2), section_id=None, page_size=0, page_token=token, max_seats=100)
    assert refused.value.reason == "INVALID_PAGE_TOKEN"


def test_a_negative_page_size_is_an_invalid_argument():
    with pytest.raises(InvalidArgument):
        full_view_page(_layout(2, 2, 2), section_id=None, page_size=-1, page_token="", max_seats=100)


# --- resuming from the log ----------------------------------------------------------------------------------------


def _chain(versions: list[int], first_prev: int = 0) -> list[seatfeed.SeatFeedMessage]:
    out, prev = [], first_prev
    for version in versions:
        out.append(seatfeed.SeatFeedMessage(1, version, prev, ()))
        prev = version
    return out


def test_a_resume_replays_what_follows_the_position_in_publication_order():
    log = _chain([10, 12, 11, 15])  # 11 drew its version before 12 but was published after it
    assert [m.version for m in seatfeed.replay_after(log, 15, 12) or []] == [11, 15]
    assert [m.version for m in seatfeed.replay_after(log, 15, 0) or []] == [10, 12, 11, 15]
    assert seatfeed.replay_after(log, 15, 15) == []


def test_a_position_the_log_does_not_reach_needs_a_snapshot():
    log = _chain([20, 21], first_prev=19)
    assert seatfeed.replay_after(log, 21, 5) is None
    assert seatfeed.replay_after(log, 21, 18) is None


@given(st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=40, unique=True), st.data())
def test_any_position_in_the_log_replays_exactly_the_later_publications(versions, data):
    log = _chain(versions)
    index = data.draw(st.integers(min_value=0, max_value=len(versions) - 1))
    replay = seatfeed.replay_after(log, versions[-1], versions[index])
    assert replay is not None
    assert [m.version for m in replay] == versions[index + 1:]


# --- slow readers -------------------------------------------------------------------------------------------------


class _Transport:
    """A connection's send side: what was written, and how much of it the peer has not taken yet."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.unsent = 0
        self.reading = True

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.unsent

    def write(self, data: bytes) -> None:
        self.written.append(data)
        if not self.reading:
            self.unsent += len(data)


async def test_a_slow_reader_is_dropped_with_a_reason_and_the_others_keep_getting_every_change():
    from event_svc.http_api import HttpWatcher
    from event_svc.seat_hub import FeedItem

    fast_transport, slow_transport = _Transport(), _Transport()
    slow_transport.reading = False
    fast = HttpWatcher(fast_transport, StreamFormat.SSE, max_buffer=64 * 1024, queue_limit=16)
    slow = HttpWatcher(slow_transport, StreamFormat.SSE, max_buffer=64 * 1024, queue_limit=16)
    for watcher in (fast, slow):
        watcher.live, watcher.last = True, 0
    changes = tuple((f"101-1-{n}", "reserved") for n in range(200))  # ~10 KB a frame
    prev = 0
    for version in range(1, 41):
        item = FeedItem(seatfeed.SeatFeedMessage(1, version, prev, changes))
        prev = version
        fast.offer(item)
        slow.offer(item)
    assert fast.ended is None
    assert fast.last == 40
    assert len(fast_transport.written) == 40
    assert slow.ended is not None
    assert slow.ended[0] == "SLOW_READER"
    assert slow_transport.unsent <= 64 * 1024
    assert len(slow_transport.written) < 10


def test_a_change_a_resumed_watcher_got_from_the_log_is_not_sent_again_when_pub_sub_brings_it_late():
    """A resume reads the log, which may be ahead of the process's pub/sub: the hub then offers the watcher a
    change its replay already held. It is skipped, not taken for a broken chain (which would cost a whole map)."""
    from event_svc.http_api import HttpWatcher
    from event_svc.seat_hub import FeedBatch, FeedItem

    transport = _Transport()
    watcher = HttpWatcher(transport, StreamFormat.SSE, max_buffer=64 * 1024, queue_limit=16)
    replayed = FeedItem(seatfeed.SeatFeedMessage(1, 11, 10, (("101-1-1", "reserved"),)))
    watcher.started("resumed", 10, [replayed])
    watcher.live = True
    late = FeedItem(seatfeed.SeatFeedMessage(1, 11, 10, (("101-1-1", "reserved"),)))
    new = FeedItem(seatfeed.SeatFeedMessage(1, 12, 11, (("101-1-2", "reserved"),)))
    watcher.offer_batch(FeedBatch((late, new)))
    assert not watcher.resync
    assert watcher.last == 12
    assert [frame.count(b"\nid: ") for frame in transport.written] == [1]
    assert b"\nid: 12\n" in transport.written[0]
