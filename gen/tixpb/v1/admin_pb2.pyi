import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import booking_pb2 as _booking_pb2
from . import event_pb2 as _event_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetWaitingRoomRequest(_message.Message):
    __slots__ = ("event_id",)
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    def __init__(self, event_id: _Optional[str] = ...) -> None: ...

class EnableWaitingRoomRequest(_message.Message):
    __slots__ = ("event_id", "reason")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    reason: str
    def __init__(self, event_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DisableWaitingRoomRequest(_message.Message):
    __slots__ = ("event_id", "reason")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    reason: str
    def __init__(self, event_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PauseWaitingRoomRequest(_message.Message):
    __slots__ = ("event_id", "reason")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    reason: str
    def __init__(self, event_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ResumeWaitingRoomRequest(_message.Message):
    __slots__ = ("event_id", "reason")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    reason: str
    def __init__(self, event_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SetAdmissionRateRequest(_message.Message):
    __slots__ = ("event_id", "rate_per_second", "reason")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    RATE_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    rate_per_second: int
    reason: str
    def __init__(self, event_id: _Optional[str] = ..., rate_per_second: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class SetMaxActiveShoppersRequest(_message.Message):
    __slots__ = ("event_id", "max_active", "reason")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    max_active: int
    reason: str
    def __init__(self, event_id: _Optional[str] = ..., max_active: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class WaitingRoomStatus(_message.Message):
    __slots__ = ("event_id", "enabled", "paused", "rate_per_second", "max_active", "sale_start_time", "waiting", "pre_queue", "admitted", "active_shoppers", "admission_rate", "estimated_time_to_clear")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    RATE_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    MAX_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    SALE_START_TIME_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    PRE_QUEUE_FIELD_NUMBER: _ClassVar[int]
    ADMITTED_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_SHOPPERS_FIELD_NUMBER: _ClassVar[int]
    ADMISSION_RATE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_TIME_TO_CLEAR_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    enabled: bool
    paused: bool
    rate_per_second: int
    max_active: int
    sale_start_time: _timestamp_pb2.Timestamp
    waiting: int
    pre_queue: int
    admitted: int
    active_shoppers: int
    admission_rate: float
    estimated_time_to_clear: _duration_pb2.Duration
    def __init__(self, event_id: _Optional[str] = ..., enabled: _Optional[bool] = ..., paused: _Optional[bool] = ..., rate_per_second: _Optional[int] = ..., max_active: _Optional[int] = ..., sale_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., waiting: _Optional[int] = ..., pre_queue: _Optional[int] = ..., admitted: _Optional[int] = ..., active_shoppers: _Optional[int] = ..., admission_rate: _Optional[float] = ..., estimated_time_to_clear: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class OpenSaleRequest(_message.Message):
    __slots__ = ("event_id", "reason")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    reason: str
    def __init__(self, event_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CloseSaleRequest(_message.Message):
    __slots__ = ("event_id", "reason")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    reason: str
    def __init__(self, event_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelSaleRequest(_message.Message):
    __slots__ = ("event_id", "reason")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    reason: str
    def __init__(self, event_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SaleState(_message.Message):
    __slots__ = ("event_id", "status", "sale_start_time", "sale_end_time", "event_start_time", "cancelled", "confirmed_bookings")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SALE_START_TIME_FIELD_NUMBER: _ClassVar[int]
    SALE_END_TIME_FIELD_NUMBER: _ClassVar[int]
    EVENT_START_TIME_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_BOOKINGS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    status: _event_pb2.SaleStatus
    sale_start_time: _timestamp_pb2.Timestamp
    sale_end_time: _timestamp_pb2.Timestamp
    event_start_time: _timestamp_pb2.Timestamp
    cancelled: bool
    confirmed_bookings: int
    def __init__(self, event_id: _Optional[str] = ..., status: _Optional[_Union[_event_pb2.SaleStatus, str]] = ..., sale_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sale_end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., event_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cancelled: _Optional[bool] = ..., confirmed_bookings: _Optional[int] = ...) -> None: ...

class AdminServiceGetBookingRequest(_message.Message):
    __slots__ = ("booking_id",)
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    booking_id: str
    def __init__(self, booking_id: _Optional[str] = ...) -> None: ...

class AdminServiceCancelBookingRequest(_message.Message):
    __slots__ = ("booking_id", "reason")
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    booking_id: str
    reason: str
    def __init__(self, booking_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RefundBookingRequest(_message.Message):
    __slots__ = ("booking_id", "reason")
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    booking_id: str
    reason: str
    def __init__(self, booking_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReconcileBookingsRequest(_message.Message):
    __slots__ = ("dry_run", "since")
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    since: _duration_pb2.Duration
    def __init__(self, dry_run: _Optional[bool] = ..., since: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ReconcileReport(_message.Message):
    __slots__ = ("checked", "paid_not_confirmed", "open_intents_of_ended_bookings", "refunds_owed", "repaired", "ticket_mismatches", "unresolved", "consistent", "summary")
    CHECKED_FIELD_NUMBER: _ClassVar[int]
    PAID_NOT_CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    OPEN_INTENTS_OF_ENDED_BOOKINGS_FIELD_NUMBER: _ClassVar[int]
    REFUNDS_OWED_FIELD_NUMBER: _ClassVar[int]
    REPAIRED_FIELD_NUMBER: _ClassVar[int]
    TICKET_MISMATCHES_FIELD_NUMBER: _ClassVar[int]
    UNRESOLVED_FIELD_NUMBER: _ClassVar[int]
    CONSISTENT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    checked: int
    paid_not_confirmed: int
    open_intents_of_ended_bookings: int
    refunds_owed: int
    repaired: int
    ticket_mismatches: _containers.RepeatedScalarFieldContainer[str]
    unresolved: _containers.RepeatedScalarFieldContainer[str]
    consistent: bool
    summary: str
    def __init__(self, checked: _Optional[int] = ..., paid_not_confirmed: _Optional[int] = ..., open_intents_of_ended_bookings: _Optional[int] = ..., refunds_owed: _Optional[int] = ..., repaired: _Optional[int] = ..., ticket_mismatches: _Optional[_Iterable[str]] = ..., unresolved: _Optional[_Iterable[str]] = ..., consistent: _Optional[bool] = ..., summary: _Optional[str] = ...) -> None: ...
