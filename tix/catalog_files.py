"""Catalog files: what an operator writes to add or edit venues, performers and events without SQL
(``tix catalog apply FILE``, YAML or JSON).

Every row is named by the operator's own ``external_id``; events name their venue and performer by theirs. Applying
a file creates what is new, updates what differs and leaves the rest untouched, so applying the same file again
changes nothing. The whole file is checked before anything is written, and every problem is reported with where it
is (``events[3].starts_at: ...``). See docs/catalog-files.md for an example.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

# tix.v1.EventCategory, by the name operators write.
CATEGORIES: dict[str, int] = {"concert": 1, "sports": 2, "theater": 3, "comedy": 4, "family": 5}
DEFAULT_DURATION = timedelta(hours=3)

ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Category = Literal["concert", "sports", "theater", "comedy", "family"]


class CatalogFileError(ValueError):
    """A catalog file that cannot be applied; ``problems`` says where and why, one line each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(f"  {p}" for p in problems))


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VenueEntry(_Entry):
    external_id: ExternalId
    name: Name
    city: Name
    region: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""
    country_code: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    latitude: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    longitude: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
    time_zone: str
    # A seat layout id (the layouts table): the venue's seats and capacity.
    layout: Annotated[str, StringConstraints(min_length=1, max_length=40)]

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as 'America/New_York')") from None
        return value


class PerformerEntry(_Entry):
    external_id: ExternalId
    name: Name
    category: Category
    genre: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""


class QueueEntry(_Entry):
    enabled: bool = False
    rate_per_second: Annotated[int, Field(ge=1, le=1_000_000)] = 50
    max_active: Annotated[int, Field(ge=1, le=10_000_000)] = 1000


class EventEntry(_Entry):
    external_id: ExternalId
    name: Name
    description: Annotated[str, StringConstraints(max_length=5000)] = ""
    # Defaults to the performer's category.
    category: Category | None = None
    venue: ExternalId
    performer: ExternalId
    starts_at: AwareDatetime
    # Defaults to three hours after the start.
    ends_at: AwareDatetime | None = None
    sale_starts_at: AwareDatetime
    sale_ends_at: AwareDatetime | None = None
    cancelled: bool = False
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "USD"
    # Price of each price tier of the venue's layout, in minor units (cents): tier 1 first.
    tier_prices: Annotated[list[Annotated[int, Field(ge=0, le=100_000_000)]], Field(min_length=1, max_length=20)]
    max_seats_per_user: Annotated[int, Field(ge=1, le=100)] = 8
    queue: QueueEntry = QueueEntry()

    @model_validator(mode="after")
    def _times_in_order(self) -> EventEntry:
        if self.ends_at is not None and self.ends_at < self.starts_at:
            raise ValueError("ends_at must not be before starts_at")
        if self.sale_ends_at is not None and self.sale_ends_at < self.sale_starts_at:
            raise ValueError("sale_ends_at must not be before sale_starts_at")
        return self

    @property
    def ends(self) -> datetime:
        return self.ends_at or self.starts_at + DEFAULT_DURATION


class CatalogFile(_Entry):
    venues: list[VenueEntry] = []
    performers: list[PerformerEntry] = []
    events: list[EventEntry] = []

    @property
    def size(self) -> int:
        return len(self.venues) + len(self.performers) + len(self.events)


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"


def _duplicates(kind: str, entries: list[Any]) -> list[str]:
    counts = Counter(entry.external_id for entry in entries)
    return [
        f"{kind}[{index}].external_id: {entry.external_id!r} appears {counts[entry.external_id]} times in the file"
        for index, entry in enumerate(entries)
        if counts[entry.external_id] > 1
    ]


def parse_catalog(raw: str, source: str = "catalog") -> CatalogFile:
    """Parse and validate a catalog file's text (YAML, of which JSON is a subset); raises CatalogFileError."""
    import yaml

    try:
        data = json.loads(raw) if source.endswith(".json") else yaml.safe_load(raw)
    except ValueError as error:
        raise CatalogFileError(source, [f"not valid JSON: {error}"]) from None
    except yaml.YAMLError as error:
        raise CatalogFileError(source, [f"not valid YAML: {error}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CatalogFileError(source, ["the file must be a mapping with 'venues', 'performers' and/or 'events'"])
    try:
        catalog = CatalogFile.model_validate(data)
    except ValidationError as error:
        raise CatalogFileError(
            source, [f"{_location(e['loc'])}: {e['msg']}" for e in error.errors(include_url=False)]
        ) from None
    problems = (
        _duplicates("venues", catalog.venues)
        + _duplicates("performers", catalog.performers)
        + _duplicates("events", catalog.events)
    )
    if problems:
        raise CatalogFileError(source, problems)
    return catalog


def load_catalog(path: Path) -> CatalogFile:
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CatalogFileError(str(path), [f"cannot read the file: {error}"]) from None
    return parse_catalog(raw, str(path))
