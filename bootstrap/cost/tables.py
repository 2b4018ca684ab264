"""The price table (data/prices.json) and the usage assumptions (data/usage.json), loaded and checked.

Plain data, no Pulumi import: the estimate can run on any recorded graph, or on none (tests).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
PRICES_FILE = PROJECT_DIR / "data" / "prices.json"
USAGE_FILE = PROJECT_DIR / "data" / "usage.json"
HOURS = 730  # hours in a month, AWS Pricing Calculator convention
# Figures that are priced only as the region's own list price: a derived one is reported as not
# priced (the review found these ratios wrong, see Prices.sourced).
UNSOURCED_WHEN_DERIVED = frozenset({"rds_backup_gb_month", "pi_vcpu_month_first", "pi_vcpu_month_additional"})
# Where an instance-price ratio held against the list prices (within a few percent).
RATIO_SOUND_CONTINENTS = frozenset({"North America", "Europe"})


class CostError(ValueError):
    """Input the estimate cannot use (unknown region, bad usage file); reported as one sentence, exit 2."""


class NoPricesError(CostError):
    """The stack's region is not in the price table (a plain plan still prints, without the estimate)."""


@functools.lru_cache(maxsize=4)
def _load_json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


@dataclass(frozen=True)
class Prices:
    """The price table seen from one region: `p('nat_hour')` looks the region up, then the global prices."""

    region: str
    as_of: str
    regional: Mapping[str, Any]
    global_: Mapping[str, Any]
    rds: Mapping[str, Any]
    sources: Mapping[str, str]

    def p(self, key: str) -> float:
        if key in self.regional:
            return float(self.regional[key])
        return float(self.global_[key])

    def derived(self, key: str) -> str:
        """The documented ratio a regional figure was computed from, or '' for a listed price."""
        return str((self.regional.get("derived") or {}).get(key, ""))

    def sourced(self, key: str) -> tuple[float | None, str]:
        """A figure only where it is the region's own list price (or a ratio the price review found
        sound): (value, '') or (None, why not). Checked against public price data (issue 23 item 10):
        RDS backup storage from the storage ratio was 10-64% off in every region that derived it, and
        Performance Insights retention scaled from Tokyo's figures was ~12% low."""
        derivation = self.derived(key)
        if derivation and key in UNSOURCED_WHEN_DERIVED:
            return None, f"no sourced list price of {key} for {self.region} (the table only has a ratio: {derivation}); check the pricing page"
        return self.p(key), ""

    def rds_instance_hour(self, instance_class: str) -> tuple[float | None, str]:
        """Single-AZ hourly price of a PostgreSQL instance class here, or (None, why not)."""
        parts = instance_class.split(".")
        if len(parts) != 3:
            return None, f"{instance_class!r} is not db.<family>.<size>"
        _, family, size = parts
        factor = float(self.regional["rds_factor"])
        if self.derived("rds_factor") and self.regional.get("continent") not in RATIO_SOUND_CONTINENTS:
            return None, (f"no sourced PostgreSQL instance prices for {self.region}: a ratio of one class's price ({self.derived('rds_factor')}) "
                          "was 11-25% off outside the US and Europe; check the pricing page")
        if instance_class in self.rds["burstable"]:
            return float(self.rds["burstable"][instance_class]) * factor, ""
        if family in self.rds["family_large"] and size in self.rds["size_factor"]:
            return float(self.rds["family_large"][family]) * float(self.rds["size_factor"][size]) * factor, ""
        return None, f"instance class {instance_class} is {self.rds['not_priced_families']['_reason']}"

    def rds_vcpus(self, instance_class: str) -> int | None:
        size = instance_class.rsplit(".", 1)[-1]
        value = self.rds["vcpus"].get(size)
        return int(value) if value is not None else None


def price_regions(path: Path = PRICES_FILE) -> list[str]:
    return sorted(_load_json(path)["regions"])


def load_prices(region: str, path: Path = PRICES_FILE) -> Prices:
    data = _load_json(path)
    regions = data["regions"]
    if region not in regions:
        raise NoPricesError(
            f"there are no prices for region {region!r} in data/{path.name}; priced regions: {', '.join(sorted(regions))} "
            "(add the region's figures to the table to estimate it)"
        )
    return Prices(
        region=region,
        as_of=str(data["as_of"]),
        regional=regions[region],
        global_=data["global"],
        rds=data["rds"],
        sources=data["sources"],
    )


# --------------------------------------------------------------------------------------------
# Usage assumptions
# --------------------------------------------------------------------------------------------


def usage_keys(path: Path = USAGE_FILE) -> dict[str, tuple[str, str]]:
    """Every usage key with its (unit, meaning)."""
    return {k: (v[0], v[1]) for k, v in _load_json(path)["keys"].items()}


def default_usage(environment: str, path: Path = USAGE_FILE) -> dict[str, float]:
    profiles = _load_json(path)["profiles"]
    profile = profiles.get(environment) or profiles["dev"]
    return {k: float(v) for k, v in profile.items()}


def _check(values: Mapping[str, Any], origin: str, path: Path = USAGE_FILE) -> dict[str, float]:
    known = usage_keys(path)
    out: dict[str, float] = {}
    for key, value in values.items():
        if key not in known:
            raise CostError(f"{origin}: unknown usage key {key!r}; known keys: {', '.join(sorted(known))}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise CostError(f"{origin}: usage {key} = {value!r} is invalid: it must be a number >= 0 ({known[key][0]})")
        out[key] = float(value)
    return out


def read_usage_file(file: str | Path) -> dict[str, float]:
    """A --usage FILE: a JSON or YAML mapping of usage key to number."""
    path = Path(file)
    try:
        text = path.read_text()
    except OSError as exc:
        raise CostError(f"--usage {file}: cannot read the file ({exc.strerror or exc})") from None
    try:
        doc = yaml.safe_load(text)  # YAML is a superset of JSON: one parser for both
    except yaml.YAMLError:
        raise CostError(f"--usage {file}: not valid JSON or YAML; write a mapping such as {{\"nat_gb\": 100}}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise CostError(f"--usage {file}: must be a mapping of usage key to number, e.g. nat_gb: 100")
    return _check(doc, f"--usage {file}")


def parse_usage_pairs(pairs: list[str] | tuple[str, ...], origin: str) -> dict[str, float]:
    """The `costUsage` config value: key=value strings."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = str(pair).partition("=")
        if not sep:
            raise CostError(f"{origin}: entry {pair!r} must be key=value, e.g. nat_gb=100")
        try:
            values[key.strip()] = float(raw)
        except ValueError:
            raise CostError(f"{origin}: usage {key.strip()} = {raw!r} is invalid: it must be a number >= 0") from None
    return _check(values, origin)
