import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import common_pb2 as _common_pb2
from . import event_pb2 as _event_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchEventsRequest(_message.Message):
    __slots__ = ("query", "start_time", "end_time", "city", "latitude", "longitude", "radius_km", "performer", "category", "page_size", "page_token", "venue")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    RADIUS_KM_FIELD_NUMBER: _ClassVar[int]
    PERFORMER_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    VENUE_FIELD_NUMBER: _ClassVar[int]
    query: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    city: str
    latitude: float
    longitude: float
    radius_km: float
    performer: str
    category: _common_pb2.EventCategory
    page_size: int
    page_token: str
    venue: str
    def __init__(self, query: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., city: _Optional[str] = ..., latitude: _Optional[float] = ..., longitude: _Optional[float] = ..., radius_km: _Optional[float] = ..., performer: _Optional[str] = ..., category: _Optional[_Union[_common_pb2.EventCategory, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., venue: _Optional[str] = ...) -> None: ...

class EventSummary(_message.Message):
    __slots__ = ("event_id", "name", "category", "start_time", "venue", "performer", "sale_status", "min_price", "distance_km", "availability_band")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    VENUE_FIELD_NUMBER: _ClassVar[int]
    PERFORMER_FIELD_NUMBER: _ClassVar[int]
    SALE_STATUS_FIELD_NUMBER: _ClassVar[int]
    MIN_PRICE_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_KM_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_BAND_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    name: str
    category: _common_pb2.EventCategory
    start_time: _timestamp_pb2.Timestamp
    venue: _event_pb2.Venue
    performer: _event_pb2.Performer
    sale_status: _event_pb2.SaleStatus
    min_price: _common_pb2.Money
    distance_km: float
    availability_band: _common_pb2.AvailabilityBand
    def __init__(self, event_id: _Optional[str] = ..., name: _Optional[str] = ..., category: _Optional[_Union[_common_pb2.EventCategory, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., venue: _Optional[_Union[_event_pb2.Venue, _Mapping]] = ..., performer: _Optional[_Union[_event_pb2.Performer, _Mapping]] = ..., sale_status: _Optional[_Union[_event_pb2.SaleStatus, str]] = ..., min_price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., distance_km: _Optional[float] = ..., availability_band: _Optional[_Union[_common_pb2.AvailabilityBand, str]] = ...) -> None: ...

class SearchEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token", "total_size")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[EventSummary]
    next_page_token: str
    total_size: int
    def __init__(self, events: _Optional[_Iterable[_Union[EventSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class SuggestEventsRequest(_message.Message):
    __slots__ = ("query", "page_size")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    query: str
    page_size: int
    def __init__(self, query: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class CitySuggestion(_message.Message):
    __slots__ = ("name", "region", "country_code")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_CODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    region: str
    country_code: str
    def __init__(self, name: _Optional[str] = ..., region: _Optional[str] = ..., country_code: _Optional[str] = ...) -> None: ...

class SuggestEventsResponse(_message.Message):
    __slots__ = ("performers", "venues", "cities", "events")
    PERFORMERS_FIELD_NUMBER: _ClassVar[int]
    VENUES_FIELD_NUMBER: _ClassVar[int]
    CITIES_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    performers: _containers.RepeatedCompositeFieldContainer[_event_pb2.Performer]
    venues: _containers.RepeatedCompositeFieldContainer[_event_pb2.Venue]
    cities: _containers.RepeatedCompositeFieldContainer[CitySuggestion]
    events: _containers.RepeatedCompositeFieldContainer[EventSummary]
    def __init__(self, performers: _Optional[_Iterable[_Union[_event_pb2.Performer, _Mapping]]] = ..., venues: _Optional[_Iterable[_Union[_event_pb2.Venue, _Mapping]]] = ..., cities: _Optional[_Iterable[_Union[CitySuggestion, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[EventSummary, _Mapping]]] = ...) -> None: ...
