from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class EventCategory(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_CATEGORY_UNSPECIFIED: _ClassVar[EventCategory]
    EVENT_CATEGORY_CONCERT: _ClassVar[EventCategory]
    EVENT_CATEGORY_SPORTS: _ClassVar[EventCategory]
    EVENT_CATEGORY_THEATER: _ClassVar[EventCategory]
    EVENT_CATEGORY_COMEDY: _ClassVar[EventCategory]
    EVENT_CATEGORY_FAMILY: _ClassVar[EventCategory]

class AvailabilityBand(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AVAILABILITY_BAND_UNSPECIFIED: _ClassVar[AvailabilityBand]
    AVAILABILITY_BAND_AVAILABLE: _ClassVar[AvailabilityBand]
    AVAILABILITY_BAND_FEW_LEFT: _ClassVar[AvailabilityBand]
    AVAILABILITY_BAND_SOLD_OUT: _ClassVar[AvailabilityBand]

class SeatStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEAT_STATUS_UNSPECIFIED: _ClassVar[SeatStatus]
    SEAT_STATUS_AVAILABLE: _ClassVar[SeatStatus]
    SEAT_STATUS_RESERVED: _ClassVar[SeatStatus]
    SEAT_STATUS_BOOKED: _ClassVar[SeatStatus]
EVENT_CATEGORY_UNSPECIFIED: EventCategory
EVENT_CATEGORY_CONCERT: EventCategory
EVENT_CATEGORY_SPORTS: EventCategory
EVENT_CATEGORY_THEATER: EventCategory
EVENT_CATEGORY_COMEDY: EventCategory
EVENT_CATEGORY_FAMILY: EventCategory
AVAILABILITY_BAND_UNSPECIFIED: AvailabilityBand
AVAILABILITY_BAND_AVAILABLE: AvailabilityBand
AVAILABILITY_BAND_FEW_LEFT: AvailabilityBand
AVAILABILITY_BAND_SOLD_OUT: AvailabilityBand
SEAT_STATUS_UNSPECIFIED: SeatStatus
SEAT_STATUS_AVAILABLE: SeatStatus
SEAT_STATUS_RESERVED: SeatStatus
SEAT_STATUS_BOOKED: SeatStatus

class Money(_message.Message):
    __slots__ = ("currency_code", "amount_minor")
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    currency_code: str
    amount_minor: int
    def __init__(self, currency_code: _Optional[str] = ..., amount_minor: _Optional[int] = ...) -> None: ...
