import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SaleStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SALE_STATUS_UNSPECIFIED: _ClassVar[SaleStatus]
    SALE_STATUS_SCHEDULED: _ClassVar[SaleStatus]
    SALE_STATUS_ON_SALE: _ClassVar[SaleStatus]
    SALE_STATUS_SOLD_OUT: _ClassVar[SaleStatus]
    SALE_STATUS_ENDED: _ClassVar[SaleStatus]
    SALE_STATUS_CANCELLED: _ClassVar[SaleStatus]

class SeatMapView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEAT_MAP_VIEW_UNSPECIFIED: _ClassVar[SeatMapView]
    SEAT_MAP_VIEW_COMPACT: _ClassVar[SeatMapView]
    SEAT_MAP_VIEW_FULL: _ClassVar[SeatMapView]
SALE_STATUS_UNSPECIFIED: SaleStatus
SALE_STATUS_SCHEDULED: SaleStatus
SALE_STATUS_ON_SALE: SaleStatus
SALE_STATUS_SOLD_OUT: SaleStatus
SALE_STATUS_ENDED: SaleStatus
SALE_STATUS_CANCELLED: SaleStatus
SEAT_MAP_VIEW_UNSPECIFIED: SeatMapView
SEAT_MAP_VIEW_COMPACT: SeatMapView
SEAT_MAP_VIEW_FULL: SeatMapView

class Venue(_message.Message):
    __slots__ = ("venue_id", "name", "city", "region", "country_code", "latitude", "longitude", "time_zone", "capacity", "layout_name", "layout_id")
    VENUE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_CODE_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_NAME_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    venue_id: str
    name: str
    city: str
    region: str
    country_code: str
    latitude: float
    longitude: float
    time_zone: str
    capacity: int
    layout_name: str
    layout_id: str
    def __init__(self, venue_id: _Optional[str] = ..., name: _Optional[str] = ..., city: _Optional[str] = ..., region: _Optional[str] = ..., country_code: _Optional[str] = ..., latitude: _Optional[float] = ..., longitude: _Optional[float] = ..., time_zone: _Optional[str] = ..., capacity: _Optional[int] = ..., layout_name: _Optional[str] = ..., layout_id: _Optional[str] = ...) -> None: ...

class Performer(_message.Message):
    __slots__ = ("performer_id", "name", "category", "genre")
    PERFORMER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    performer_id: str
    name: str
    category: _common_pb2.EventCategory
    genre: str
    def __init__(self, performer_id: _Optional[str] = ..., name: _Optional[str] = ..., category: _Optional[_Union[_common_pb2.EventCategory, str]] = ..., genre: _Optional[str] = ...) -> None: ...

class SectionAvailability(_message.Message):
    __slots__ = ("section_id", "name", "price_tier", "price", "available_count", "total_count")
    SECTION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRICE_TIER_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    section_id: str
    name: str
    price_tier: int
    price: _common_pb2.Money
    available_count: int
    total_count: int
    def __init__(self, section_id: _Optional[str] = ..., name: _Optional[str] = ..., price_tier: _Optional[int] = ..., price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., available_count: _Optional[int] = ..., total_count: _Optional[int] = ...) -> None: ...

class WaitingRoom(_message.Message):
    __slots__ = ("enabled", "admission_rate_per_second", "max_active_shoppers")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    ADMISSION_RATE_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    MAX_ACTIVE_SHOPPERS_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    admission_rate_per_second: int
    max_active_shoppers: int
    def __init__(self, enabled: _Optional[bool] = ..., admission_rate_per_second: _Optional[int] = ..., max_active_shoppers: _Optional[int] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("event_id", "name", "description", "category", "start_time", "end_time", "venue", "performer", "sale_start_time", "sale_status", "waiting_room", "min_price", "max_price", "available_count", "total_count", "sections", "max_seats_per_user", "availability_band")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    VENUE_FIELD_NUMBER: _ClassVar[int]
    PERFORMER_FIELD_NUMBER: _ClassVar[int]
    SALE_START_TIME_FIELD_NUMBER: _ClassVar[int]
    SALE_STATUS_FIELD_NUMBER: _ClassVar[int]
    WAITING_ROOM_FIELD_NUMBER: _ClassVar[int]
    MIN_PRICE_FIELD_NUMBER: _ClassVar[int]
    MAX_PRICE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    SECTIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_SEATS_PER_USER_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_BAND_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    name: str
    description: str
    category: _common_pb2.EventCategory
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    venue: Venue
    performer: Performer
    sale_start_time: _timestamp_pb2.Timestamp
    sale_status: SaleStatus
    waiting_room: WaitingRoom
    min_price: _common_pb2.Money
    max_price: _common_pb2.Money
    available_count: int
    total_count: int
    sections: _containers.RepeatedCompositeFieldContainer[SectionAvailability]
    max_seats_per_user: int
    availability_band: _common_pb2.AvailabilityBand
    def __init__(self, event_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., category: _Optional[_Union[_common_pb2.EventCategory, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., venue: _Optional[_Union[Venue, _Mapping]] = ..., performer: _Optional[_Union[Performer, _Mapping]] = ..., sale_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sale_status: _Optional[_Union[SaleStatus, str]] = ..., waiting_room: _Optional[_Union[WaitingRoom, _Mapping]] = ..., min_price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., max_price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., available_count: _Optional[int] = ..., total_count: _Optional[int] = ..., sections: _Optional[_Iterable[_Union[SectionAvailability, _Mapping]]] = ..., max_seats_per_user: _Optional[int] = ..., availability_band: _Optional[_Union[_common_pb2.AvailabilityBand, str]] = ...) -> None: ...

class GetEventRequest(_message.Message):
    __slots__ = ("event_id",)
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    def __init__(self, event_id: _Optional[str] = ...) -> None: ...

class ListSeatsRequest(_message.Message):
    __slots__ = ("event_id", "section_id", "view", "page_size", "page_token")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SECTION_ID_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    section_id: str
    view: SeatMapView
    page_size: int
    page_token: str
    def __init__(self, event_id: _Optional[str] = ..., section_id: _Optional[str] = ..., view: _Optional[_Union[SeatMapView, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class Seat(_message.Message):
    __slots__ = ("seat_id", "section_id", "row_label", "number", "status", "price", "x", "y")
    SEAT_ID_FIELD_NUMBER: _ClassVar[int]
    SECTION_ID_FIELD_NUMBER: _ClassVar[int]
    ROW_LABEL_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    seat_id: str
    section_id: str
    row_label: str
    number: int
    status: _common_pb2.SeatStatus
    price: _common_pb2.Money
    x: float
    y: float
    def __init__(self, seat_id: _Optional[str] = ..., section_id: _Optional[str] = ..., row_label: _Optional[str] = ..., number: _Optional[int] = ..., status: _Optional[_Union[_common_pb2.SeatStatus, str]] = ..., price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class SeatRow(_message.Message):
    __slots__ = ("row_label", "first_seat_number", "status_codes", "seats")
    ROW_LABEL_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEAT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODES_FIELD_NUMBER: _ClassVar[int]
    SEATS_FIELD_NUMBER: _ClassVar[int]
    row_label: str
    first_seat_number: int
    status_codes: str
    seats: _containers.RepeatedCompositeFieldContainer[Seat]
    def __init__(self, row_label: _Optional[str] = ..., first_seat_number: _Optional[int] = ..., status_codes: _Optional[str] = ..., seats: _Optional[_Iterable[_Union[Seat, _Mapping]]] = ...) -> None: ...

class SeatSection(_message.Message):
    __slots__ = ("section_id", "name", "price_tier", "price", "available_count", "total_count", "rows")
    SECTION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRICE_TIER_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    section_id: str
    name: str
    price_tier: int
    price: _common_pb2.Money
    available_count: int
    total_count: int
    rows: _containers.RepeatedCompositeFieldContainer[SeatRow]
    def __init__(self, section_id: _Optional[str] = ..., name: _Optional[str] = ..., price_tier: _Optional[int] = ..., price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., available_count: _Optional[int] = ..., total_count: _Optional[int] = ..., rows: _Optional[_Iterable[_Union[SeatRow, _Mapping]]] = ...) -> None: ...

class SeatMap(_message.Message):
    __slots__ = ("event_id", "version", "sections", "next_page_token")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SECTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    version: int
    sections: _containers.RepeatedCompositeFieldContainer[SeatSection]
    next_page_token: str
    def __init__(self, event_id: _Optional[str] = ..., version: _Optional[int] = ..., sections: _Optional[_Iterable[_Union[SeatSection, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchSeatsRequest(_message.Message):
    __slots__ = ("event_id", "since_version")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    since_version: int
    def __init__(self, event_id: _Optional[str] = ..., since_version: _Optional[int] = ...) -> None: ...

class SeatChange(_message.Message):
    __slots__ = ("seat_id", "status")
    SEAT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    seat_id: str
    status: _common_pb2.SeatStatus
    def __init__(self, seat_id: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.SeatStatus, str]] = ...) -> None: ...

class WatchSeatsResponse(_message.Message):
    __slots__ = ("version", "snapshot", "changes", "heartbeat")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    version: int
    snapshot: SeatMap
    changes: SeatChanges
    heartbeat: Heartbeat
    def __init__(self, version: _Optional[int] = ..., snapshot: _Optional[_Union[SeatMap, _Mapping]] = ..., changes: _Optional[_Union[SeatChanges, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SeatChanges(_message.Message):
    __slots__ = ("changes",)
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[SeatChange]
    def __init__(self, changes: _Optional[_Iterable[_Union[SeatChange, _Mapping]]] = ...) -> None: ...

class GetSeatLayoutRequest(_message.Message):
    __slots__ = ("layout_id",)
    LAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    layout_id: str
    def __init__(self, layout_id: _Optional[str] = ...) -> None: ...

class LayoutRow(_message.Message):
    __slots__ = ("row_label", "first_seat_number", "xs", "ys", "price_tiers")
    ROW_LABEL_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEAT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    XS_FIELD_NUMBER: _ClassVar[int]
    YS_FIELD_NUMBER: _ClassVar[int]
    PRICE_TIERS_FIELD_NUMBER: _ClassVar[int]
    row_label: str
    first_seat_number: int
    xs: _containers.RepeatedScalarFieldContainer[float]
    ys: _containers.RepeatedScalarFieldContainer[float]
    price_tiers: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, row_label: _Optional[str] = ..., first_seat_number: _Optional[int] = ..., xs: _Optional[_Iterable[float]] = ..., ys: _Optional[_Iterable[float]] = ..., price_tiers: _Optional[_Iterable[int]] = ...) -> None: ...

class LayoutSection(_message.Message):
    __slots__ = ("section_id", "name", "rows")
    SECTION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    section_id: str
    name: str
    rows: _containers.RepeatedCompositeFieldContainer[LayoutRow]
    def __init__(self, section_id: _Optional[str] = ..., name: _Optional[str] = ..., rows: _Optional[_Iterable[_Union[LayoutRow, _Mapping]]] = ...) -> None: ...

class SeatLayout(_message.Message):
    __slots__ = ("layout_id", "name", "capacity", "sections")
    LAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    SECTIONS_FIELD_NUMBER: _ClassVar[int]
    layout_id: str
    name: str
    capacity: int
    sections: _containers.RepeatedCompositeFieldContainer[LayoutSection]
    def __init__(self, layout_id: _Optional[str] = ..., name: _Optional[str] = ..., capacity: _Optional[int] = ..., sections: _Optional[_Iterable[_Union[LayoutSection, _Mapping]]] = ...) -> None: ...
