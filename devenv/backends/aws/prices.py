"""What EC2 instance types cost and what they have: the table shipped in ``prices.json``.

Indicative figures (see ``PRICES_DATE`` and the table's note), good enough to show what an
environment has cost so far and to pick the cheapest type that meets ``resources``; never a
quote: ``aws.price_per_hour`` overrides the table. Light on purpose (standard library and
pydantic only): the configuration layer imports it to validate a file.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

TABLE = Path(__file__).with_name("prices.json")
REFERENCE_REGION = "us-east-1"
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(MB|GB|TB|MiB|GiB|TiB)$", re.IGNORECASE)
_GIB_PER_UNIT = {
    "mb": 1e6 / 2**30,
    "gb": 1e9 / 2**30,
    "tb": 1e12 / 2**30,
    "mib": 1 / 1024,
    "gib": 1.0,
    "tib": 1024.0,
}
_GPU_MODEL = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")


class InstanceTypeInfo(BaseModel):
    """One instance type of the table: its shape, and its prices in the reference region."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    vcpus: int = Field(ge=1)
    memory_gib: float = Field(gt=0)
    gpus: int = Field(default=0, ge=0)
    gpu_model: str | None = None
    """e.g. T4, A10G, L4, V100, A100; None without GPUs."""
    arch: Literal["x86_64", "arm64"]
    on_demand: float = Field(ge=0)
    """USD per hour, on demand, in us-east-1."""
    spot: float = Field(ge=0)
    """USD per hour, a typical spot price in us-east-1."""


class RegionPrices(BaseModel):
    """A region's prices: the reference region's times ``multiplier``, unless listed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    multiplier: float = Field(gt=0)
    on_demand: dict[str, float] = Field(default_factory=dict)
    spot: dict[str, float] = Field(default_factory=dict)


class EbsPrices(BaseModel):
    """USD per GB-month of EBS volumes by volume type: what a stopped instance costs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    date: str
    """The day these storage prices were compiled (YYYY-MM-DD)."""
    note: str
    reference: dict[str, float]
    """us-east-1's prices by volume type (gp3, gp2, ...)."""
    regions: dict[str, dict[str, float]] = Field(default_factory=dict)


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    date: str
    currency: Literal["USD"]
    note: str
    reference_region: Literal["us-east-1"]
    regions: dict[str, RegionPrices]
    ebs: EbsPrices
    types: dict[str, InstanceTypeInfo]


HOURS_PER_MONTH = 730
"""How AWS turns a monthly price into an hourly one."""


@cache
def price_table() -> PriceTable:
    """The shipped table, read and validated once."""
    raw = json.loads(TABLE.read_text(encoding="utf-8"))
    for name, row in raw.get("types", {}).items():
        row.setdefault("name", name)
    return PriceTable.model_validate(raw)


def __getattr__(name: str) -> str:
    # PRICES_DATE reads the table on first use only, so importing this module stays cheap.
    if name == "PRICES_DATE":
        return price_table().date
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


PRICES_DATE: str
"""The day the table's prices were compiled (YYYY-MM-DD); they are indicative."""


def instance_type_info(instance_type: str) -> InstanceTypeInfo | None:
    """The type's shape and reference prices; None for a type the table does not list."""
    return price_table().types.get(instance_type)


def hourly_price(instance_type: str, region: str, spot: bool) -> float | None:
    """USD per hour of one instance of ``instance_type`` in ``region`` (on demand, or a
    typical spot price); None when the table knows the type or the region not."""
    table = price_table()
    info = table.types.get(instance_type)
    prices = table.regions.get(region)
    if info is None or prices is None:
        return None
    listed = (prices.spot if spot else prices.on_demand).get(instance_type)
    if listed is not None:
        return listed
    if spot and instance_type in prices.on_demand:
        # Listed on demand only: keep the reference region's spot discount.
        return round(prices.on_demand[instance_type] * info.spot / info.on_demand, 4)
    return round((info.spot if spot else info.on_demand) * prices.multiplier, 4)


def ebs_gb_month(region: str, volume_type: str = "gp3") -> float | None:
    """USD per GB-month of a ``volume_type`` volume in ``region``; None when the table
    knows neither the region nor the type."""
    table = price_table()
    listed = table.ebs.regions.get(region, {}).get(volume_type)
    if listed is not None:
        return listed
    reference = table.ebs.reference.get(volume_type)
    prices = table.regions.get(region)
    if reference is None or prices is None:
        return None
    return round(reference * prices.multiplier, 4)


def storage_price_per_hour(volumes: list[tuple[int, str]], region: str) -> float | None:
    """USD per hour the volumes ``(size in GB, volume type)`` of a stopped instance cost in
    ``region``; None when one of them has no price in the table."""
    total = 0.0
    for size, volume_type in volumes:
        per_month = ebs_gb_month(region, volume_type)
        if per_month is None:
            return None
        total += size * per_month
    return round(total / HOURS_PER_MONTH, 6)


def parse_memory_gib(memory: str | float | int | None) -> float | None:
    """``resources.memory`` ('16GB', '512MiB', '1TB'; a bare number is GiB) in GiB."""
    if memory is None:
        return None
    if isinstance(memory, int | float):
        return float(memory)
    match = _SIZE.fullmatch(memory.strip())
    if not match:
        raise ValueError(f"{memory!r} is not a size; accepted: a number with MB, GB or TB")
    return float(match.group(1)) * _GIB_PER_UNIT[match.group(2).lower()]


def parse_gpu(gpu: int | str | None) -> tuple[int | None, str | None]:
    """``resources.gpu`` as (count, model): 1 -> (1, None), 'A10G' -> (1, 'A10G'),
    'A10G:2' -> (2, 'A10G'), '2' -> (2, None), None -> (None, None)."""
    if gpu is None:
        return None, None
    if isinstance(gpu, int):
        if gpu < 0:
            raise ValueError(f"gpu: {gpu!r} is negative; accepted: a count, MODEL or MODEL:COUNT")
        return gpu, None
    count: int | None = None
    model: str | None = None
    parts = [part.strip() for part in gpu.split(":")]
    for part in parts:
        if part.isdigit() and count is None:
            count = int(part)
        elif _GPU_MODEL.fullmatch(part) and model is None:
            model = part
        else:
            raise ValueError(
                f"gpu: {gpu!r} is not understood; accepted: a count (1), a model (A10G) "
                "or MODEL:COUNT (A10G:2)"
            )
    if model is not None and count is None:
        count = 1
    return count, model


class _Resources(Protocol):
    """What ``devenv.models.config.Resources`` has (not imported: the config layer imports us)."""

    @property
    def cpu(self) -> int | None: ...
    @property
    def memory(self) -> str | None: ...
    @property
    def gpu(self) -> int | str | None: ...


def pick_instance_type(
    cpu: int | None,
    memory_gib: float | None,
    gpus: int | None,
    gpu_model: str | None,
    *,
    arch: Literal["x86_64", "arm64"] | None = None,
) -> str:
    """The cheapest type (on demand, us-east-1) with at least ``cpu`` vCPUs, ``memory_gib``
    GiB and ``gpus`` GPUs of ``gpu_model`` (any model when None); only types without GPUs
    when no GPU is asked for. ``arch`` restricts the choice to one architecture (any when None).
    ValueError, one line naming the request, when no type of the table fits."""
    table = price_table()
    want_gpus = gpus if gpus is not None else (1 if gpu_model else 0)
    if gpu_model is not None:
        known = sorted({t.gpu_model for t in table.types.values() if t.gpu_model})
        if gpu_model.upper() not in {m.upper() for m in known}:
            raise ValueError(
                f"no instance type in devenv's price table has {gpu_model!r} GPUs; "
                f"known models: {', '.join(known)} (or set aws.instance_type)"
            )
    fits = [
        info
        for info in table.types.values()
        if info.vcpus >= (cpu or 0)
        and info.memory_gib >= (memory_gib or 0)
        and (info.gpus >= want_gpus if want_gpus else info.gpus == 0)
        and (gpu_model is None or (info.gpu_model or "").upper() == gpu_model.upper())
        and (arch is None or info.arch == arch)
    ]
    if not fits:
        raise ValueError(
            f"no instance type in devenv's price table (as of {table.date}) has "
            f"{_describe(cpu, memory_gib, want_gpus, gpu_model, arch)}; "
            "ask for less, or set aws.instance_type"
        )
    return min(fits, key=lambda info: (info.on_demand, info.vcpus, info.name)).name


def pick_for_resources(
    resources: _Resources, *, arch: Literal["x86_64", "arm64"] | None = None
) -> str:
    """``pick_instance_type`` for a configuration's ``resources`` (cpu, memory, gpu)."""
    count, model = parse_gpu(resources.gpu)
    return pick_instance_type(
        resources.cpu, parse_memory_gib(resources.memory), count, model, arch=arch
    )


def _describe(
    cpu: int | None, memory_gib: float | None, gpus: int, gpu_model: str | None, arch: str | None
) -> str:
    asked = []
    if cpu:
        asked.append(f"{cpu} vCPUs")
    if memory_gib:
        asked.append(f"{memory_gib:g} GiB of memory")
    if gpus:
        asked.append(f"{gpus} {gpu_model + ' ' if gpu_model else ''}GPU{'s' if gpus != 1 else ''}")
    if arch:
        asked.append(f"the {arch} architecture")
    return ", ".join(asked) or "no requirement"
