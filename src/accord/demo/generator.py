"""Deterministic, streaming generator of realistic Segment-spec events for a demo shop."""

from __future__ import annotations

import heapq
import itertools
import uuid
from bisect import bisect
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from random import Random
from typing import Any, Final, TypeVar

__all__ = [
    "CATALOG",
    "DEFAULT_START",
    "SHOP_NAME",
    "SHOP_URL",
    "DemoConfig",
    "Product",
    "generate_events",
    "generate_n_events",
    "generate_visitor_events",
    "summarise",
]

SHOP_NAME: Final = "Accord Demo Outfitters"
SHOP_URL: Final = "https://shop.example.com"
DEFAULT_START: Final = datetime(2026, 10, 1, tzinfo=UTC)

_SEC: Final = 1_000
_MIN: Final = 60 * _SEC
_HOUR: Final = 60 * _MIN
_DAY: Final = 24 * _HOUR
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DATE: Final = date(1970, 1, 1)
_MASK62: Final = (1 << 62) - 1
_MASK64: Final = (1 << 64) - 1


@dataclass(frozen=True)
class DemoConfig:
    """Knobs for one demo data set; equal configs always produce identical streams."""

    seed: int = 42
    visitors: int = 200
    start: datetime = DEFAULT_START
    days: int = 30
    pos_share: float = 0.03

    def __post_init__(self) -> None:
        if self.visitors < 0:
            raise ValueError(f"visitors must be >= 0, got {self.visitors}")
        if self.days < 1:
            raise ValueError(f"days must be >= 1, got {self.days}")
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        if not 0.0 <= self.pos_share <= 1.0:
            raise ValueError(f"pos_share must be within [0, 1], got {self.pos_share}")


@dataclass(frozen=True)
class Product:
    """One catalogue item; prices are kept in cents so order totals add up exactly."""

    product_id: str
    sku: str
    name: str
    category: str
    price_cents: int
    slug: str

    @property
    def price(self) -> float:
        return self.price_cents / 100


_CATALOG_SOURCE: Final[tuple[tuple[str, str, tuple[tuple[str, int], ...]], ...]] = (
    (
        "shoes",
        "SHO",
        (
            ("Trailhead Hiking Boot", 14995),
            ("Cityline Leather Sneaker", 10900),
            ("Ridge Trail Runner", 12995),
            ("Harbor Canvas Sneaker", 6995),
            ("Alpine Winter Boot", 17900),
            ("Meadow Suede Loafer", 11900),
            ("Summit Approach Shoe", 13995),
            ("Drift Slip-On", 5995),
            ("Granite Chelsea Boot", 15900),
            ("Breeze Sandal", 4995),
        ),
    ),
    (
        "jackets",
        "JKT",
        (
            ("Stormshell Rain Jacket", 18900),
            ("Nordic Down Parka", 27900),
            ("Ridge Softshell Jacket", 14900),
            ("Harbor Waxed Jacket", 22900),
            ("Featherlight Puffer Vest", 9995),
            ("Trailblazer Fleece", 7995),
            ("Metro Trench Coat", 24900),
            ("Coastline Windbreaker", 8995),
            ("Glacier Insulated Jacket", 21900),
            ("Cascade Denim Jacket", 11900),
        ),
    ),
    (
        "bags",
        "BAG",
        (
            ("Voyager 30L Backpack", 12900),
            ("Commuter Laptop Bag", 9900),
            ("Weekender Duffel", 14900),
            ("Daypack 18L", 6995),
            ("Leather Messenger Bag", 17900),
            ("Roll-Top Dry Bag", 5995),
            ("City Tote", 7900),
            ("Hip Pack", 3495),
            ("Trek 45L Pack", 19900),
            ("Canvas Shopper", 3995),
        ),
    ),
    (
        "accessories",
        "ACC",
        (
            ("Merino Beanie", 2995),
            ("Wool Scarf", 3995),
            ("Touchscreen Gloves", 3495),
            ("Trail Socks 3-Pack", 2495),
            ("Leather Belt", 4495),
            ("Polarised Sunglasses", 8900),
            ("Insulated Bottle 0.75L", 2795),
            ("Rain Cap", 3295),
            ("Headlamp 200lm", 3995),
            ("Card Wallet", 2995),
        ),
    ),
)


def _slugify(name: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split())


def _build_catalog() -> tuple[Product, ...]:
    products: list[Product] = []
    for category, code, items in _CATALOG_SOURCE:
        for position, (name, cents) in enumerate(items, start=1):
            number = 1000 + len(products) + 1
            products.append(
                Product(
                    product_id=f"prd_{number}",
                    sku=f"ADO-{code}-{position:03d}",
                    name=name,
                    category=category,
                    price_cents=cents,
                    slug=_slugify(name),
                )
            )
    return tuple(products)


CATALOG: Final = _build_catalog()
_CATEGORIES: Final = tuple(category for category, _, _ in _CATALOG_SOURCE)
_BY_CATEGORY: Final = {c: tuple(p for p in CATALOG if p.category == c) for c in _CATEGORIES}


def _cumulative(weights: Iterable[float]) -> list[float]:
    return list(itertools.accumulate(weights))


# Zipf-like popularity so a handful of bestsellers dominate, as in real shops;
# jackets get a lift because the default window is autumn.
_PRODUCT_CUM: Final = _cumulative(
    (2.0 if p.category == "jackets" else 1.0) / (1 + (i % 10)) ** 0.8 for i, p in enumerate(CATALOG)
)
_CATEGORY_CUM: Final = _cumulative((0.9, 1.4, 0.8, 0.7))
# How often a visitor's product comes from their favourite category (Zipf inside it).
_TASTE: Final = 0.7
_CATEGORY_PRODUCT_CUM: Final = {
    c: _cumulative(1 / (1 + i) ** 0.8 for i in range(len(items)))
    for c, items in _BY_CATEGORY.items()
}

# Traffic by UTC hour for a shop whose customers live in UTC+0..+2: quiet nights,
# a lunch bump and the evening peak; weekends are flatter with a midday plateau.
_WEEKDAY_HOURS: Final = _cumulative(
    (
        2,
        1,
        0.5,
        0.4,
        0.4,
        0.8,
        2,
        3.5,
        4,
        4.5,
        5,
        5.5,
        6.5,
        6,
        5.5,
        5.5,
        6,
        7,
        8.5,
        10,
        10,
        8,
        5.5,
        3.5,
    )
)
_WEEKEND_HOURS: Final = _cumulative(
    (
        2.5,
        1.5,
        0.8,
        0.5,
        0.4,
        0.5,
        1,
        2.5,
        4.5,
        6.5,
        7.5,
        8,
        8,
        7.5,
        7,
        7,
        7,
        7.5,
        8,
        8.5,
        8,
        6.5,
        4.5,
        3.5,
    )
)
_DAY_WEIGHT: Final = (1.0, 0.95, 0.95, 1.0, 0.9, 1.15, 1.3)  # Monday .. Sunday


@dataclass(frozen=True)
class _Country:
    code: str
    locale: str
    timezone: str
    phone_prefix: str
    phone_digits: int
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]


_GERMAN_FIRST = ("Anna", "Lukas", "Mia", "Jonas", "Lea", "Felix", "Hannah", "Paul", "Emma", "Leon")
_GERMAN_LAST = (
    "Mueller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Wagner",
    "Becker",
    "Hoffmann",
)
_ENGLISH_FIRST = (
    "Olivia",
    "Jack",
    "Amelia",
    "Harry",
    "Isla",
    "Noah",
    "Grace",
    "Oscar",
    "Aoife",
    "Sean",
)
_ENGLISH_LAST = ("Smith", "Jones", "Taylor", "Brown", "Walsh", "Murphy", "Evans", "Clarke")

_COUNTRIES: Final = (
    _Country("DE", "de-DE", "Europe/Berlin", "+49151", 8, _GERMAN_FIRST, _GERMAN_LAST),
    _Country("AT", "de-AT", "Europe/Vienna", "+43664", 7, _GERMAN_FIRST, _GERMAN_LAST),
    _Country(
        "FR",
        "fr-FR",
        "Europe/Paris",
        "+336",
        8,
        ("Louise", "Gabriel", "Jade", "Raphael", "Chloe", "Louis", "Alice", "Hugo"),
        ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand"),
    ),
    _Country(
        "NL",
        "nl-NL",
        "Europe/Amsterdam",
        "+316",
        8,
        ("Sophie", "Daan", "Julia", "Sem", "Tess", "Lucas", "Fenna", "Milan"),
        ("de Jong", "Jansen", "de Vries", "van den Berg", "Bakker", "Visser", "Smit", "Meijer"),
    ),
    _Country("GB", "en-GB", "Europe/London", "+447", 9, _ENGLISH_FIRST, _ENGLISH_LAST),
    _Country("IE", "en-IE", "Europe/Dublin", "+3538", 8, _ENGLISH_FIRST, _ENGLISH_LAST),
    _Country(
        "ES",
        "es-ES",
        "Europe/Madrid",
        "+346",
        8,
        ("Lucia", "Hugo", "Sofia", "Mateo", "Martina", "Pablo", "Carmen", "Alvaro"),
        ("Garcia", "Rodriguez", "Gonzalez", "Fernandez", "Lopez", "Martinez", "Sanchez", "Perez"),
    ),
    _Country(
        "IT",
        "it-IT",
        "Europe/Rome",
        "+393",
        9,
        ("Giulia", "Leonardo", "Sofia", "Francesco", "Aurora", "Alessandro", "Chiara", "Lorenzo"),
        ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci"),
    ),
    _Country(
        "SE",
        "sv-SE",
        "Europe/Stockholm",
        "+467",
        8,
        ("Alice", "William", "Maja", "Oliver", "Elsa", "Hugo", "Astrid", "Nils"),
        (
            "Andersson",
            "Johansson",
            "Karlsson",
            "Nilsson",
            "Eriksson",
            "Larsson",
            "Olsson",
            "Persson",
        ),
    ),
)
_COUNTRY_CUM: Final = _cumulative((30, 6, 15, 10, 14, 4, 9, 8, 4))
_EMAIL_DOMAINS: Final = ("example.com", "example.org", "example.net")

# Only RFC 5737 documentation networks, so demo data can never point at a real host.
_IP_PREFIXES: Final = ("192.0.2.", "198.51.100.", "203.0.113.")

_WEB_LIBRARY: Final = ("analytics.js", "next-1.76.0")
_BROWSERS: Final = (
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36"
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.0 Safari/605.1.15"
    ),
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:131.0) Gecko/20100101 Firefox/131.0",
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36 Edg/129.0.0.0"
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1"
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/129.0.0.0 Mobile Safari/537.36"
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 "
        "(KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36"
    ),
)
_BROWSER_CUM: Final = _cumulative((24, 12, 6, 5, 28, 18, 7))

_APPS: Final = (
    (
        ("analytics-swift", "1.6.1"),
        {"name": "iOS", "version": "18.0.1"},
        {"type": "ios", "manufacturer": "Apple", "model": "iPhone16,2"},
        "AccordDemoOutfitters/3.2.0 (iPhone16,2; iOS 18.0.1; Scale/3.00)",
    ),
    (
        ("analytics-kotlin", "1.16.3"),
        {"name": "Android", "version": "14"},
        {"type": "android", "manufacturer": "Google", "model": "Pixel 8"},
        "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/AP2A.240905.003)",
    ),
)
_APP_INFO: Final = {
    "name": SHOP_NAME,
    "version": "3.2.0",
    "build": "3200",
    "namespace": "com.example.accorddemo",
}

# (source, medium, campaign name, landing path, referrer)
_UTM_CAMPAIGNS: Final = (
    ("google", "cpc", "autumn_sale_2026", "/c/jackets", "https://www.google.com/"),
    (
        "instagram",
        "social",
        "new_in_jackets",
        "/p/stormshell-rain-jacket",
        "https://www.instagram.com/",
    ),
    ("facebook", "paid_social", "retargeting_cart", "/cart", "https://www.facebook.com/"),
    ("partner_blog", "referral", "hiking_guide_2026", "/c/shoes", "https://blog.example.org/"),
    ("bing", "cpc", "brand_search", "/", "https://www.bing.com/"),
)
_UTM_CUM: Final = _cumulative((40, 22, 12, 10, 16))
_ORGANIC_REFERRERS: Final = (
    "",
    "https://www.google.com/",
    "https://duckduckgo.com/",
    "https://www.ecosia.org/",
    "https://www.reddit.com/",
)
_REFERRER_CUM: Final = _cumulative((45, 38, 7, 5, 5))

_SEARCHES: Final = (
    "rain jacket",
    "hiking boots",
    "backpack",
    "wool scarf",
    "white sneakers",
    "down parka",
    "leather bag",
    "gloves",
    "waterproof",
    "gift ideas",
)
_CONTENT_PAGES: Final = (
    ("Stores", "/stores", f"Our Stores | {SHOP_NAME}"),
    ("Shipping & Returns", "/help/shipping-returns", f"Shipping & Returns | {SHOP_NAME}"),
    ("About", "/about", f"About Us | {SHOP_NAME}"),
    ("Journal", "/journal/layering-for-autumn-hikes", f"Layering for Autumn Hikes | {SHOP_NAME}"),
)
_PAYMENT_METHODS: Final = ("card", "paypal", "klarna", "apple_pay")
_STORES: Final = {
    "DE": ("st_ber_01", "st_muc_01"),
    "AT": ("st_vie_01",),
    "NL": ("st_ams_01",),
    "FR": ("st_par_01",),
    "GB": ("st_lon_01",),
}
_ALL_STORES: Final = tuple(s for stores in _STORES.values() for s in stores)
_COMPANIES: Final = (
    ("grp_1001", "Northwind Trail Co.", "Outdoor tourism", 48),
    ("grp_1002", "Blue Fjord Logistics", "Logistics", 320),
    ("grp_1003", "Alpenglow Events GmbH", "Event management", 22),
    ("grp_1004", "Harbor & Pine Architects", "Architecture", 65),
    ("grp_1005", "Kestrel Field Services", "Environmental consulting", 140),
    ("grp_1006", "Lumen Film Studio", "Media production", 35),
    ("grp_1007", "Cedar Ridge School", "Education", 90),
    ("grp_1008", "Polar Byte Labs", "Software", 210),
)
_EMAIL_NEWSLETTERS: Final = (
    ("Weekly Picks", "Five things we love this week", "/c/accessories"),
    ("Autumn Layers", "Layer up: new jackets just landed", "/c/jackets"),
    ("Trail Guide", "Your weekend trail checklist", "/c/shoes"),
    ("Pack Smart", "Bags for every kind of trip", "/c/bags"),
)
_POS_LIBRARY: Final = ("accord-pos-import", "1.4.0")
_EMAIL_LIBRARY: Final = ("accord-email-webhook", "2.0.3")

# Consent states as (preferences, statistics, marketing); "necessary" is always granted.
_Consent = tuple[bool, bool, bool]
_T = TypeVar("_T")


# How readily visitors accept the banner, by country and by device: apps ask once at
# install and get more yes, phones' small banners get more no: rates of about 55-75 %.
_OPT_IN_BY_COUNTRY: Final = {
    "DE": 0.60,
    "AT": 0.57,
    "FR": 0.64,
    "NL": 0.71,
    "GB": 0.69,
    "IE": 0.67,
    "ES": 0.66,
    "IT": 0.63,
    "SE": 0.72,
}
_OPT_IN_BY_DEVICE: Final = {"desktop": 0.04, "mobile": -0.04, "app": 0.05}


def _device_class(device: _Device) -> str:
    if device.app is not None:
        return "app"
    return "mobile" if "Mobile" in device.user_agent else "desktop"


def _consent_dict(consent: _Consent) -> dict[str, bool]:
    return {
        "necessary": True,
        "preferences": consent[0],
        "statistics": consent[1],
        "marketing": consent[2],
    }


def _pick(rng: Random, items: Sequence[_T], cum: Sequence[float]) -> _T:
    # bisect on a precomputed cumulative table is several times faster than Random.choices.
    return items[bisect(cum, rng.random() * cum[-1])]


class _Clock:
    """Formats epoch milliseconds as ISO-8601 UTC.

    Consecutive events of a session mostly share a minute, so the text up to the minute
    is remembered and only seconds and milliseconds are formatted per event.
    """

    __slots__ = ("_days", "_minute", "_prefix")

    def __init__(self) -> None:
        self._days: dict[int, str] = {}
        self._minute = -1
        self._prefix = ""

    def iso(self, ms: int) -> str:
        minute, rem = divmod(ms, _MIN)
        if minute != self._minute:
            day, minute_of_day = divmod(minute, 24 * 60)
            date_text = self._days.get(day)
            if date_text is None:
                date_text = (_EPOCH_DATE + timedelta(days=day)).isoformat()
                self._days[day] = date_text
            hours, minutes = divmod(minute_of_day, 60)
            self._minute = minute
            self._prefix = f"{date_text}T{hours:02d}:{minutes:02d}:"
        seconds, millis = divmod(rem, _SEC)
        return f"{self._prefix}{seconds:02d}.{millis:03d}Z"


class _MessageIds:
    """UUIDv4-shaped ids that are unique by construction, not just by probability.

    The low 62 bits are a bijective mix of the stream position, so two positions can
    never share an id; the high half is a keyed hash of those bits so ids look random.
    """

    __slots__ = ("_key", "_salt")

    def __init__(self, seed: int) -> None:
        rng = Random(f"accord-demo/message-ids/{seed}")
        self._key = rng.getrandbits(62)
        self._salt = rng.getrandbits(64)

    def make(self, position: int) -> str:
        x = (position + self._key) & _MASK62
        x ^= x >> 31
        x = (x * 0x2545F4914F6CDD1D) & _MASK62
        x ^= x >> 29
        x = (x * 0x1CE4E5B9BF58476D) & _MASK62
        x ^= x >> 32
        y = ((x ^ self._salt) * 0x9E3779B97F4A7C15) & _MASK64
        y ^= y >> 31
        high = (y & ~(0xF << 12)) | (0x4 << 12)
        text = f"{(high << 64) | (0b10 << 62) | x:032x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@dataclass(frozen=True)
class _Newsletter:
    at: int
    number: int
    campaign_id: str
    name: str
    subject: str
    link_path: str


class _World:
    """Everything derived from the config that is shared by all visitors."""

    def __init__(self, config: DemoConfig) -> None:
        self.seed = config.seed
        self.pos_share = config.pos_share
        start_us = (config.start - _EPOCH) // timedelta(microseconds=1)
        self.start_ms = -(-start_us // 1000)  # ceil, so no event lands before `start`
        self.end_ms = (start_us + config.days * _DAY * 1000) // 1000
        self.first_midnight = self.start_ms - self.start_ms % _DAY
        n_days = (self.end_ms - self.first_midnight) // _DAY + 1
        weekdays = [
            (_EPOCH_DATE + timedelta(days=self.first_midnight // _DAY + d)).weekday()
            for d in range(n_days)
        ]
        self.day_cum = _cumulative(_DAY_WEIGHT[w] for w in weekdays)
        self.day_hours = [_WEEKEND_HOURS if w >= 5 else _WEEKDAY_HOURS for w in weekdays]
        self.clock = _Clock()
        self.newsletters = self._schedule_newsletters()

    def _schedule_newsletters(self) -> list[_Newsletter]:
        # Sends go out Tuesdays and Fridays at 08:00 UTC, like a typical retail calendar.
        letters: list[_Newsletter] = []
        midnight = self.first_midnight
        while midnight <= self.end_ms:
            day = _EPOCH_DATE + timedelta(days=midnight // _DAY)
            at = midnight + 8 * _HOUR
            if day.weekday() in (1, 4) and self.start_ms <= at <= self.end_ms:
                name, subject, path = _EMAIL_NEWSLETTERS[len(letters) % len(_EMAIL_NEWSLETTERS)]
                letters.append(
                    _Newsletter(
                        at=at,
                        number=len(letters) + 1,
                        campaign_id=f"cmp_{day:%Y%m%d}_{_slugify(name).replace('-', '_')}",
                        name=name,
                        subject=subject,
                        link_path=path,
                    )
                )
            midnight += _DAY
        return letters

    def session_start(self, rng: Random) -> int:
        for _ in range(8):
            day = bisect(self.day_cum, rng.random() * self.day_cum[-1])
            hours = self.day_hours[day]
            hour = bisect(hours, rng.random() * hours[-1])
            at = self.first_midnight + day * _DAY + hour * _HOUR + int(rng.random() * _HOUR)
            if self.start_ms <= at <= self.end_ms:
                return at
        # Only reachable for tiny windows that start or end mid-day.
        return self.start_ms + int(rng.random() * (self.end_ms - self.start_ms))


_BY_SLUG: Final = {p.slug: p for p in CATALOG}
_SESSION: Final = 0
_POS: Final = 1


def _uuid4(rng: Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _line(product: Product, quantity: int) -> dict[str, Any]:
    return {
        "product_id": product.product_id,
        "sku": product.sku,
        "name": product.name,
        "category": product.category,
        "price": product.price,
        "quantity": quantity,
    }


def _lines(cart: dict[Product, int]) -> list[dict[str, Any]]:
    return [_line(product, quantity) for product, quantity in cart.items()]


def _cart_cents(cart: dict[Product, int]) -> int:
    return sum(product.price_cents * quantity for product, quantity in cart.items())


class _Device:
    """One browser or app install; consent and login state live here, as on a real device."""

    __slots__ = (
        "anonymous_id",
        "app",
        "consent",
        "identified",
        "ip",
        "library",
        "used",
        "user_agent",
    )

    def __init__(self, rng: Random, app: int | None) -> None:
        self.anonymous_id = _uuid4(rng)
        self.ip = f"{_IP_PREFIXES[int(rng.random() * 3)]}{1 + int(rng.random() * 254)}"
        self.app = None if app is None else _APPS[app]
        if self.app is None:
            self.user_agent = _pick(rng, _BROWSERS, _BROWSER_CUM)
            self.library = _WEB_LIBRARY
        else:
            self.user_agent = self.app[3]
            self.library = self.app[0]
        self.consent: _Consent | None = None
        self.identified = False
        self.used = False


@dataclass(frozen=True)
class _Agenda:
    kind: int
    device: _Device | None = None
    letter: _Newsletter | None = None
    cart: tuple[tuple[Product, int], ...] = ()


class _Visitor:
    """Simulates one person over the whole window and returns their events in time order."""

    def __init__(self, world: _World, index: int) -> None:
        rng = Random(f"accord-demo/{world.seed}/visitor/{index}")
        self.rng = rng
        self.world = world
        self.index = index
        self.iso = world.clock.iso
        self.out: list[tuple[int, int, dict[str, Any]]] = []
        self.country = _pick(rng, _COUNTRIES, _COUNTRY_CUM)
        firsts, lasts = self.country.first_names, self.country.last_names
        self.first_name = firsts[int(rng.random() * len(firsts))]
        self.last_name = lasts[int(rng.random() * len(lasts))]
        self.user_id = f"u_{index + 1:06d}"
        self.registered = rng.random() < 0.35
        # Some customers already had an account before the window: they log in, not sign up.
        has_account = self.registered and rng.random() < 0.4
        self.created_at: int | None = (
            world.start_ms - int((30 + rng.random() * 700) * _DAY) if has_account else None
        )
        self.company = (
            _COMPANIES[int(rng.random() * len(_COMPANIES))]
            if self.registered and rng.random() < 0.06
            else None
        )
        self.grouped = False
        self.identified_at: int | None = None
        self.subscribed = False
        self.orders = 0
        self.agenda: list[tuple[int, int, _Agenda]] = []
        self.agenda_seq = 0
        self.primary = _Device(rng, None)
        # Per-session state, reset by _session().
        self.dev = self.primary
        self.t = 0
        self.page: dict[str, str] = {}
        self.referrer = ""
        self.landing_query = ""
        self.campaign: dict[str, str] | None = None
        self.cart: dict[Product, int] = {}
        self.cart_id = ""
        # A taste for one category, drawn from its own stream so every other choice (and
        # every test that counts them) stays as it was; recommendations learn from it.
        self.taste = Random(f"accord-demo/{world.seed}/taste/{index}")
        self.favourite = _pick(self.taste, _CATEGORIES, _CATEGORY_CUM)

    # -- scheduling -------------------------------------------------------------------

    def _schedule(self, at: int, item: _Agenda) -> None:
        heapq.heappush(self.agenda, (at, self.agenda_seq, item))
        self.agenda_seq += 1

    def run(self) -> list[dict[str, Any]]:
        rng = self.rng
        world = self.world
        r = rng.random()
        if r < 0.55:
            n_sessions = 1
        elif r < 0.80:
            n_sessions = 2
        elif r < 0.92:
            n_sessions = 3 + int(rng.random() * 2)
        else:
            n_sessions = 5 + int(rng.random() * 5)
        second: _Device | None = None
        second_from = n_sessions
        if self.registered and n_sessions >= 2 and rng.random() < 0.3:
            second = _Device(rng, int(rng.random() * 2) if rng.random() < 0.6 else None)
            second_from = 1 + int(rng.random() * (n_sessions - 1))
        starts = sorted(world.session_start(rng) for _ in range(n_sessions))
        for i, at in enumerate(starts):
            device = self.primary
            if second is not None and i >= second_from:
                device = second if i == second_from or rng.random() < 0.5 else self.primary
            self._schedule(at, _Agenda(_SESSION, device=device))

        letters = world.newsletters
        next_letter = 0
        busy_until = world.start_ms - _HOUR
        end = world.end_ms
        agenda = self.agenda
        while agenda or next_letter < len(letters):
            letter_due = next_letter < len(letters)
            if letter_due and (not agenda or letters[next_letter].at <= agenda[0][0]):
                self._newsletter(letters[next_letter])
                next_letter += 1
                continue
            at, _, item = heapq.heappop(agenda)
            if item.kind == _POS:
                self._pos_purchase(at, item.cart)
                continue
            assert item.device is not None
            # One person browses one session at a time; overlapping draws are pushed back.
            at = max(at, busy_until + _MIN + int(rng.random() * 20 * _MIN))
            if at <= end:
                busy_until = self._session(at, item.device, item.letter)

        self.out.sort()
        return [event for at, _, event in self.out if at <= end]

    # -- event construction -----------------------------------------------------------

    def _emit(self, at: int, event: dict[str, Any]) -> None:
        self.out.append((at, len(self.out), event))

    def _client(self, kind: str, name_key: str = "", name: str = "") -> dict[str, Any]:
        dev = self.dev
        event: dict[str, Any] = {"type": kind}
        if name_key:
            event[name_key] = name
        event["messageId"] = ""
        event["anonymousId"] = dev.anonymous_id
        if dev.identified:
            event["userId"] = self.user_id
        event["timestamp"] = self.iso(self.t)
        event["context"] = self._context()
        return event

    def _context(self) -> dict[str, Any]:
        dev = self.dev
        country = self.country
        context: dict[str, Any] = {
            "ip": dev.ip,
            "userAgent": dev.user_agent,
            "locale": country.locale,
            "timezone": country.timezone,
            "library": {"name": dev.library[0], "version": dev.library[1]},
        }
        if dev.app is None:
            context["page"] = dict(self.page)
        else:
            context["app"] = dict(_APP_INFO)
            context["device"] = {**dev.app[2], "id": dev.anonymous_id}
            context["os"] = dict(dev.app[1])
        if self.campaign is not None:
            context["campaign"] = dict(self.campaign)
        if dev.consent is not None:
            context["consent"] = {"categoryPreferences": _consent_dict(dev.consent)}
        return context

    def _track(self, name: str, properties: dict[str, Any]) -> None:
        event = self._client("track", "event", name)
        event["properties"] = properties
        self._emit(self.t, event)

    def _server(
        self,
        at: int,
        name: str,
        channel: str,
        library: tuple[str, str],
        properties: dict[str, Any],
    ) -> None:
        library_info = {"name": library[0], "version": library[1]}
        self._emit(
            at,
            {
                "type": "track",
                "event": name,
                "messageId": "",
                "userId": self.user_id,
                "timestamp": self.iso(at),
                "context": {"channel": channel, "library": library_info},
                "properties": properties,
            },
        )

    def _pause(self, low_s: float, high_s: float) -> None:
        # Squaring skews dwell times towards the short end, as real ones are.
        r = self.rng.random()
        self.t += int((low_s + (high_s - low_s) * r * r) * _SEC)

    def _blink(self) -> None:
        self.t += 40 + int(self.rng.random() * 400)

    def _page(self, name: str, path: str, title: str, search: str = "") -> None:
        if self.landing_query:
            search, self.landing_query = self.landing_query, ""
        url = f"{SHOP_URL}{path}{search}"
        self.page = {
            "path": path,
            "referrer": self.referrer,
            "search": search,
            "title": title,
            "url": url,
        }
        self.referrer = url
        if self.dev.app is None:
            event = self._client("page", "name", name)
            event["properties"] = dict(self.page)
        else:
            event = self._client("screen", "name", name)
            event["properties"] = {"title": title}
        self._emit(self.t, event)
        if self.dev.consent is None:
            # The banner answer arrives before any other tracking on a new device.
            self._pause(1, 12)
            self._update_consent()
            self._pause(0.2, 3)

    # -- pages and funnel steps -------------------------------------------------------

    def _view_home(self) -> None:
        self._page("Home", "/", f"{SHOP_NAME} – Outdoor & City Wear")

    def _view_category(self, category: str) -> None:
        self._page("Category", f"/c/{category}", f"{category.title()} | {SHOP_NAME}")
        self._blink()
        self._track(
            "Product List Viewed",
            {
                "list_id": category,
                "category": category,
                "products": [
                    {
                        "product_id": p.product_id,
                        "sku": p.sku,
                        "name": p.name,
                        "price": p.price,
                        "position": i,
                    }
                    for i, p in enumerate(_BY_CATEGORY[category][:4], start=1)
                ],
            },
        )

    def _view_product(self, product: Product) -> None:
        self._page(
            "Product Detail" if self.dev.app is not None else "Product",
            f"/p/{product.slug}",
            f"{product.name} | {SHOP_NAME}",
        )
        self._blink()
        self._track(
            "Product Viewed",
            {
                "product_id": product.product_id,
                "sku": product.sku,
                "name": product.name,
                "category": product.category,
                "price": product.price,
                "currency": "EUR",
                "url": f"{SHOP_URL}/p/{product.slug}",
            },
        )

    def _view_search(self) -> Product:
        query = _SEARCHES[int(self.rng.random() * len(_SEARCHES))]
        self._track("Products Searched", {"query": query})
        self._blink()
        search = "?q=" + query.replace(" ", "+")
        self._page("Search Results", "/search", f"Search: {query} | {SHOP_NAME}", search)
        return self._random_product()

    def _view_cart(self) -> None:
        self._page("Cart", "/cart", f"Your Cart | {SHOP_NAME}")
        self._blink()
        self._track("Cart Viewed", {"cart_id": self.cart_id, "products": _lines(self.cart)})

    def _random_product(self) -> Product:
        anyone = _pick(self.rng, CATALOG, _PRODUCT_CUM)
        if self.taste.random() < _TASTE:
            return _pick(
                self.taste, _BY_CATEGORY[self.favourite], _CATEGORY_PRODUCT_CUM[self.favourite]
            )
        return anyone

    def _choose_consent(self) -> _Consent:
        rng = self.rng
        # Each purpose is granted with probability `rate`: all of them, none of them, or
        # (on 12 % of banners) a coin toss per purpose.
        rate = _OPT_IN_BY_COUNTRY[self.country.code] + _OPT_IN_BY_DEVICE[_device_class(self.dev)]
        r = rng.random()
        if r < rate - 0.06:
            return (True, True, True)
        if r < 0.88:
            return (False, False, False)
        while True:
            choice = (rng.random() < 0.5, rng.random() < 0.5, rng.random() < 0.5)
            if choice not in ((True, True, True), (False, False, False)):
                return choice

    def _update_consent(self) -> None:
        consent = self.dev.consent = self._choose_consent()
        self._track("Consent Updated", {"purposes": _consent_dict(consent), "regime": "gdpr"})

    def _traits(self) -> dict[str, Any]:
        country = self.country
        local = f"{self.first_name}.{self.last_name}".lower().replace(" ", "")
        domain = _EMAIL_DOMAINS[self.index % len(_EMAIL_DOMAINS)]
        # Multiplying by a constant coprime to 10 is a bijection, so phones stay unique.
        number = (self.index * 2654435761 + 7919) % 10**country.phone_digits
        assert self.created_at is not None
        return {
            "email": f"{local}.{self.index + 1}@{domain}",
            "first_name": self.first_name,
            "last_name": self.last_name,
            "phone": f"{country.phone_prefix}{number:0{country.phone_digits}d}",
            "country": country.code,
            "created_at": self.iso(self.created_at),
        }

    def _authenticate(self) -> None:
        dev = self.dev
        signing_up = self.created_at is None
        if signing_up:
            self._page(
                "Create Account" if dev.app is not None else "Sign Up",
                "/account/register",
                f"Create Account | {SHOP_NAME}",
            )
        else:
            self._page("Sign In", "/account/login", f"Sign In | {SHOP_NAME}")
        self._pause(15, 90)
        if signing_up:
            self.created_at = self.t
            if self.rng.random() < 0.25:
                alias = self._client("alias")
                alias["previousId"] = dev.anonymous_id
                alias["userId"] = self.user_id
                self._emit(self.t, alias)
                self._blink()
        dev.identified = True
        identify = self._client("identify")
        identify["traits"] = self._traits()
        self._emit(self.t, identify)
        if signing_up:
            self._blink()
            self._track("Signed Up", {"method": "email"})
        if self.identified_at is None:
            self.identified_at = self.t
            # Marketing email only goes to people who granted marketing consent.
            self.subscribed = dev.consent is not None and dev.consent[2]
        if self.company is not None and not self.grouped:
            self.grouped = True
            self._blink()
            group_id, name, industry, employees = self.company
            group = self._client("group")
            group["groupId"] = group_id
            group["traits"] = {"name": name, "industry": industry, "employees": employees}
            self._emit(self.t, group)
        self._pause(2, 20)

    def _browse(self, steps: int) -> Product:
        rng = self.rng
        product = self._random_product()
        for _ in range(steps):
            r = rng.random()
            if r < 0.45:
                product = self._random_product()
                self._view_product(product)
            elif r < 0.70:
                self._view_category(_pick(rng, _CATEGORIES, _CATEGORY_CUM))
            elif r < 0.85:
                product = self._view_search()
                if rng.random() < 0.7:
                    self._pause(3, 30)
                    self._view_product(product)
            elif self.dev.app is None:
                self._page(*_CONTENT_PAGES[int(rng.random() * len(_CONTENT_PAGES))])
            else:
                self._view_home()
            self._pause(4, 120)
        return product

    def _fill_cart(self, product: Product) -> None:
        rng = self.rng
        for i in range(1 + int(rng.random() * rng.random() * 4)):
            if i > 0:
                product = self._random_product()
            if self.page.get("path") != f"/p/{product.slug}":
                self._view_product(product)
                self._pause(3, 40)
            quantity = 2 if rng.random() < 0.12 else 1
            self.cart[product] = self.cart.get(product, 0) + quantity
            self._track("Product Added", self._cart_line(product, quantity))
            self._pause(2, 25)
        self._view_cart()
        if len(self.cart) > 1 and rng.random() < 0.1:
            self._pause(3, 20)
            removed = next(iter(self.cart))
            quantity = self.cart.pop(removed)
            self._track("Product Removed", self._cart_line(removed, quantity))
        self._pause(5, 60)

    def _cart_line(self, product: Product, quantity: int) -> dict[str, Any]:
        return {"cart_id": self.cart_id, **_line(product, quantity), "currency": "EUR"}

    def _checkout(self) -> None:
        rng = self.rng
        if self.registered and not self.dev.identified and rng.random() < 0.6:
            self._authenticate()
        self.orders += 1
        order_id = f"ADO-W{self.index + 1:07d}-{self.orders:02d}"
        cents = _cart_cents(self.cart)
        self._page("Checkout", "/checkout", f"Checkout | {SHOP_NAME}")
        self._blink()
        self._track(
            "Checkout Started",
            {
                "order_id": order_id,
                "value": cents / 100,
                "revenue": cents / 100,
                "currency": "EUR",
                "products": _lines(self.cart),
            },
        )
        self._pause(30, 300)
        if rng.random() < 0.12:
            return
        shipping = 0 if cents >= 7500 else 495
        self._track(
            "Order Completed",
            {
                "order_id": order_id,
                "checkout_id": self.cart_id,
                "total": (cents + shipping) / 100,
                "revenue": cents / 100,
                "shipping": shipping / 100,
                "currency": "EUR",
                "payment_method": _PAYMENT_METHODS[int(rng.random() * len(_PAYMENT_METHODS))],
                "products": _lines(self.cart),
            },
        )
        self._blink()
        self._page("Order Confirmation", "/checkout/confirmation", f"Thank You | {SHOP_NAME}")
        self._pause(5, 40)

    def _land(self, letter: _Newsletter | None) -> None:
        rng = self.rng
        self.campaign = None
        self.referrer = ""
        if letter is not None:
            self.campaign = {"source": "newsletter", "medium": "email", "name": letter.campaign_id}
            path = letter.link_path
        elif self.dev.app is None and rng.random() < 0.3:
            source, medium, name, path, self.referrer = _pick(rng, _UTM_CAMPAIGNS, _UTM_CUM)
            self.campaign = {"source": source, "medium": medium, "name": name}
        else:
            if self.dev.app is None:
                self.referrer = _pick(rng, _ORGANIC_REFERRERS, _REFERRER_CUM)
            r = rng.random()
            path = "/" if r < 0.55 else "/c/" if r < 0.85 else "/p/"
        if self.campaign is not None:
            self.landing_query = (
                f"?utm_source={self.campaign['source']}&utm_medium={self.campaign['medium']}"
                f"&utm_campaign={self.campaign['name']}"
            )
        if path.startswith("/c/"):
            category = path[3:] or _pick(rng, _CATEGORIES, _CATEGORY_CUM)
            self._view_category(category)
        elif path.startswith("/p/"):
            self._view_product(_BY_SLUG.get(path[3:]) or self._random_product())
        else:
            self._view_home()

    def _session(self, at: int, dev: _Device, letter: _Newsletter | None) -> int:
        rng = self.rng
        self.dev = dev
        self.t = at
        self.cart = {}
        self.cart_id = f"{rng.getrandbits(64):016x}"
        first_visit = not dev.used
        dev.used = True
        self._land(letter)
        self._pause(2, 15)
        if not first_visit and rng.random() < 0.04:
            # Someone reopening the banner from the footer link to change their mind.
            self._update_consent()
            self._pause(1, 10)
        if self.registered and not dev.identified:
            # A second device exists only to be logged into, so its first visit always does.
            login_chance = 0.5 if self.created_at is not None else 0.3
            if (dev is not self.primary and first_visit) or rng.random() < login_chance:
                self._authenticate()
        r = rng.random()
        if r < 0.30:
            return self.t
        if r < 0.68:
            self._browse(1 + int(rng.random() * 7))
            return self.t
        product = self._browse(int(rng.random() * 4))
        self._fill_cart(product)
        if r < 0.88:
            return self.t
        if rng.random() < self.world.pos_share:
            # Browsed online, bought in a shop: the order arrives later via the POS import.
            target = self.t + 2 * _HOUR + int(rng.random() * 46 * _HOUR)
            when = target - target % _DAY + 9 * _HOUR + int(rng.random() * 10 * _HOUR)
            if when < self.t:
                when += _DAY
            self._schedule(when, _Agenda(_POS, cart=tuple(self.cart.items())))
            return self.t
        self._checkout()
        return self.t

    # -- server-side sources ----------------------------------------------------------

    def _pos_purchase(self, at: int, cart: tuple[tuple[Product, int], ...]) -> None:
        rng = self.rng
        self.orders += 1
        stores = _STORES.get(self.country.code, _ALL_STORES)
        cents = sum(product.price_cents * quantity for product, quantity in cart)
        self._server(
            at,
            "Order Completed",
            "pos",
            _POS_LIBRARY,
            {
                "order_id": f"ADO-P{self.index + 1:07d}-{self.orders:02d}",
                "store_id": stores[int(rng.random() * len(stores))],
                "total": cents / 100,
                "revenue": cents / 100,
                "currency": "EUR",
                "payment_method": "card" if rng.random() < 0.8 else "cash",
                "products": [_line(product, quantity) for product, quantity in cart],
            },
        )

    def _newsletter(self, letter: _Newsletter) -> None:
        if not self.subscribed or self.identified_at is None or self.identified_at >= letter.at:
            return
        rng = self.rng
        properties = {
            "campaign_id": letter.campaign_id,
            "campaign_name": letter.name,
            "email_id": f"eml_{self.index + 1:07d}_{letter.number:04d}",
            "email_subject": letter.subject,
        }
        at = letter.at + int(rng.random() * 20 * _MIN)
        self._server(at, "Email Delivered", "email", _EMAIL_LIBRARY, dict(properties))
        if rng.random() >= 0.45:
            return
        r = rng.random()
        at += _MIN + int(r * r * 30 * _HOUR)
        self._server(at, "Email Opened", "email", _EMAIL_LIBRARY, dict(properties))
        if rng.random() < 0.3:
            at += 5 * _SEC + int(rng.random() * 10 * _MIN)
            link = f"{SHOP_URL}{letter.link_path}"
            clicked = {**properties, "link_url": link}
            self._server(at, "Email Link Clicked", "email", _EMAIL_LIBRARY, clicked)
            if rng.random() < 0.7:
                landing = at + 2 * _SEC + int(rng.random() * 6 * _SEC)
                self._schedule(landing, _Agenda(_SESSION, self.primary, letter))
        elif rng.random() < 0.04:
            at += 10 * _SEC + int(rng.random() * 50 * _SEC)
            self._server(at, "Unsubscribed", "email", _EMAIL_LIBRARY, dict(properties))
            self.subscribed = False


def _stream(world: _World, indices: Iterable[int], position: int = 0) -> Iterator[dict[str, Any]]:
    make_id = _MessageIds(world.seed).make
    for index in indices:
        for event in _Visitor(world, index).run():
            event["messageId"] = make_id(position)
            position += 1
            yield event


def generate_events(config: DemoConfig) -> Iterator[dict[str, Any]]:
    """Stream the demo events for ``config``, one visitor after another.

    Each visitor's events are in time order, but the stream as a whole is not sorted by
    timestamp: sorting would need every event in memory, while this stays O(1) per visitor.
    """
    return _stream(_World(config), range(config.visitors))


def generate_n_events(
    n_events: int,
    *,
    seed: int = 42,
    start: datetime = DEFAULT_START,
    days: int = 30,
    pos_share: float = 0.03,
) -> Iterator[dict[str, Any]]:
    """Exactly n_events events (scales visitors to reach it, truncating the last visitor's stream).

    Visitors are simulated one by one until enough events exist, so the result is always a
    prefix of ``generate_events`` for the same seed, window and POS share.
    """
    if n_events < 0:
        raise ValueError(f"n_events must be >= 0, got {n_events}")
    world = _World(DemoConfig(seed=seed, visitors=0, start=start, days=days, pos_share=pos_share))
    return itertools.islice(_stream(world, itertools.count()), n_events)


def generate_visitor_events(
    visitors: range,
    *,
    seed: int = 42,
    start: datetime = DEFAULT_START,
    days: int = 30,
    pos_share: float = 0.03,
    first_position: int = 0,
) -> Iterator[dict[str, Any]]:
    """The events of a range of visitors, the same as `generate_events` gives them.

    Visitors are independent, so ranges can be generated in parallel (each visitor's
    events depend only on the seed, the window and its index). Message ids come from a
    stream position starting at `first_position`; ranges given disjoint positions
    (below 2**62) never share an id.
    """
    world = _World(DemoConfig(seed=seed, visitors=0, start=start, days=days, pos_share=pos_share))
    return _stream(world, visitors, first_position)


def summarise(events: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Count events per track event name, or per call type for non-track calls, sorted by key."""
    counts: Counter[str] = Counter()
    for event in events:
        kind = str(event.get("type"))
        counts[str(event.get("event")) if kind == "track" else kind] += 1
    return dict(sorted(counts.items()))
