import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueueTicketState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUEUE_TICKET_STATE_UNSPECIFIED: _ClassVar[QueueTicketState]
    QUEUE_TICKET_STATE_PRE_QUEUE: _ClassVar[QueueTicketState]
    QUEUE_TICKET_STATE_WAITING: _ClassVar[QueueTicketState]
    QUEUE_TICKET_STATE_ADMITTED: _ClassVar[QueueTicketState]
    QUEUE_TICKET_STATE_EXPIRED: _ClassVar[QueueTicketState]
QUEUE_TICKET_STATE_UNSPECIFIED: QueueTicketState
QUEUE_TICKET_STATE_PRE_QUEUE: QueueTicketState
QUEUE_TICKET_STATE_WAITING: QueueTicketState
QUEUE_TICKET_STATE_ADMITTED: QueueTicketState
QUEUE_TICKET_STATE_EXPIRED: QueueTicketState

class JoinQueueRequest(_message.Message):
    __slots__ = ("event_id", "request_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    request_id: str
    def __init__(self, event_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class WatchQueueRequest(_message.Message):
    __slots__ = ("event_id", "ticket_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    ticket_id: str
    def __init__(self, event_id: _Optional[str] = ..., ticket_id: _Optional[str] = ...) -> None: ...

class QueueTicket(_message.Message):
    __slots__ = ("ticket_id", "event_id", "state", "position", "estimated_wait", "join_time", "admission_token", "admission_expire_time", "fans_waiting", "sale_start_time")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_WAIT_FIELD_NUMBER: _ClassVar[int]
    JOIN_TIME_FIELD_NUMBER: _ClassVar[int]
    ADMISSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ADMISSION_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    FANS_WAITING_FIELD_NUMBER: _ClassVar[int]
    SALE_START_TIME_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    event_id: str
    state: QueueTicketState
    position: int
    estimated_wait: _duration_pb2.Duration
    join_time: _timestamp_pb2.Timestamp
    admission_token: str
    admission_expire_time: _timestamp_pb2.Timestamp
    fans_waiting: int
    sale_start_time: _timestamp_pb2.Timestamp
    def __init__(self, ticket_id: _Optional[str] = ..., event_id: _Optional[str] = ..., state: _Optional[_Union[QueueTicketState, str]] = ..., position: _Optional[int] = ..., estimated_wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., join_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., admission_token: _Optional[str] = ..., admission_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fans_waiting: _Optional[int] = ..., sale_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateStreamTokenRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StreamToken(_message.Message):
    __slots__ = ("token", "expire_time")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    token: str
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, token: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
