"""The EC2 price table shipped in the package, and the choice of an instance type from it."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from devenv.backends.aws import prices
from devenv.backends.aws.prices import (
    ebs_gb_month,
    hourly_price,
    instance_type_info,
    parse_gpu,
    parse_memory_gib,
    pick_for_resources,
    pick_instance_type,
    price_table,
    storage_price_per_hour,
)
from devenv.models.config import Resources

REGIONS = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1")


def test_the_table_loads_with_its_date_and_every_common_type() -> None:
    table = price_table()
    assert re.fullmatch(r"2026-\d\d-\d\d", prices.PRICES_DATE)
    assert prices.PRICES_DATE == table.date
    assert "indicative" in table.note.lower()
    for name in (
        "t3.micro", "t3.2xlarge", "m5.large", "m6i.4xlarge", "m7i.xlarge", "c5.large",
        "c6i.2xlarge", "c7i.4xlarge", "r6i.large", "g4dn.xlarge", "g4dn.12xlarge",
        "g5.xlarge", "g5.12xlarge", "g6.xlarge", "p3.2xlarge", "p4d.24xlarge", "t4g.micro",
        "m7g.large", "c7g.xlarge",
    ):  # fmt: skip
        assert instance_type_info(name) is not None, name
    assert set(REGIONS) <= set(table.regions)


def test_a_type_has_its_shape() -> None:
    g5 = instance_type_info("g5.xlarge")
    assert g5 is not None
    assert (g5.vcpus, g5.memory_gib, g5.gpus, g5.gpu_model, g5.arch) == (4, 16, 1, "A10G", "x86_64")
    graviton = instance_type_info("m7g.large")
    assert graviton is not None and (graviton.arch, graviton.gpus) == ("arm64", 0)
    assert instance_type_info("z9.huge") is None


def test_a_known_price() -> None:
    assert hourly_price("t3.micro", "us-east-1", spot=False) == 0.0104
    assert hourly_price("m5.large", "us-east-1", spot=False) == 0.096
    assert hourly_price("g5.xlarge", "us-east-1", spot=False) == 1.006


def test_spot_is_cheaper_than_on_demand_everywhere() -> None:
    for name in price_table().types:
        for region in REGIONS:
            on_demand = hourly_price(name, region, spot=False)
            spot = hourly_price(name, region, spot=True)
            assert on_demand is not None and spot is not None, (name, region)
            assert 0 < spot < on_demand, (name, region)


def test_regions_differ() -> None:
    virginia = hourly_price("m5.large", "us-east-1", spot=False)
    frankfurt = hourly_price("m5.large", "eu-central-1", spot=False)
    tokyo = hourly_price("g5.xlarge", "ap-northeast-1", spot=False)
    assert virginia is not None and frankfurt is not None and tokyo is not None
    assert frankfurt == 0.115, "listed explicitly for the region"
    assert tokyo > 1.006, "the region's multiplier"
    assert hourly_price("m5.large", "us-east-2", spot=False) == virginia


def test_unknown_type_or_region_has_no_price() -> None:
    assert hourly_price("z9.huge", "us-east-1", spot=False) is None
    assert hourly_price("m5.large", "xx-nowhere-9", spot=True) is None


@pytest.mark.parametrize(
    ("cpu", "memory", "gpus", "model", "expected"),
    [
        (None, None, None, None, "t4g.micro"),
        (2, 8.0, None, None, "t4g.large"),
        (4, None, None, None, "t4g.xlarge"),
        (16, 128.0, None, None, "r6i.4xlarge"),
        (None, None, 1, None, "g4dn.xlarge"),
        (None, None, None, "A10G", "g5.xlarge"),
        (None, None, 2, "a10g", "g5.12xlarge"),
        (8, 48.0, 1, "L4", "g6.4xlarge"),
        (None, None, 8, "A100", "p4d.24xlarge"),
    ],
)
def test_the_cheapest_type_that_fits_is_picked(
    cpu: int | None, memory: float | None, gpus: int | None, model: str | None, expected: str
) -> None:
    assert pick_instance_type(cpu, memory, gpus, model) == expected


def test_a_request_without_gpus_never_gets_one() -> None:
    picked = instance_type_info(pick_instance_type(16, 64.0, None, None))
    assert picked is not None and picked.gpus == 0


def test_the_architecture_can_be_fixed() -> None:
    assert pick_instance_type(None, None, None, None, arch="x86_64") == "t3.micro"
    assert pick_instance_type(2, 8.0, 0, None, arch="x86_64") == "t3.large"


def test_resources_as_written_in_the_file() -> None:
    resources = Resources(cpu=4, memory="16GB", gpu="A10G")
    assert pick_for_resources(resources) == "g5.xlarge"
    assert pick_for_resources(Resources(memory="30GB"), arch="x86_64") == "r6i.xlarge"
    assert pick_for_resources(Resources(gpu=1)) == "g4dn.xlarge"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, (None, None)),
        (0, (0, None)),
        (2, (2, None)),
        ("2", (2, None)),
        ("A10G", (1, "A10G")),
        ("A10G:2", (2, "A10G")),
        ("4:L4", (4, "L4")),
    ],
)
def test_gpu_requests_parse(
    value: int | str | None, expected: tuple[int | None, str | None]
) -> None:
    assert parse_gpu(value) == expected


@pytest.mark.parametrize("value", ["A10G:two:2", "A10G:", "a b", ":", "1:2"])
def test_a_gpu_request_that_is_not_understood_says_so(value: str) -> None:
    with pytest.raises(ValueError, match="accepted: a count"):
        parse_gpu(value)


def test_memory_sizes_parse() -> None:
    assert parse_memory_gib(None) is None
    assert parse_memory_gib("16GiB") == 16
    assert parse_memory_gib("1TiB") == 1024
    assert parse_memory_gib("512MiB") == 0.5
    size = parse_memory_gib("16GB")
    assert size is not None and 14.9 < size < 16, "decimal units: 16 GB fits a 16 GiB machine"
    with pytest.raises(ValueError, match="not a size"):
        parse_memory_gib("lots")


def test_nothing_fits_is_one_clear_line() -> None:
    with pytest.raises(ValueError) as too_big:
        pick_instance_type(512, 4096.0, None, None)
    message = str(too_big.value)
    assert "\n" not in message
    assert "512 vCPUs" in message and "4096 GiB" in message and "aws.instance_type" in message
    assert prices.PRICES_DATE in message

    with pytest.raises(ValueError) as many_gpus:
        pick_instance_type(None, None, 16, "A10G")
    assert "16 A10G GPUs" in str(many_gpus.value)


def test_an_unknown_gpu_model_names_the_known_ones() -> None:
    with pytest.raises(ValueError) as unknown:
        pick_instance_type(None, None, 1, "H100")
    message = str(unknown.value)
    assert "'H100'" in message and "A10G" in message and "T4" in message
    assert "\n" not in message


def test_the_module_stays_light() -> None:
    probe = (
        "import sys, devenv.backends.aws.prices as p; p.pick_instance_type(2, None, None, None); "
        "print(sorted(m for m in ('boto3', 'botocore', 'temporalio') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert loaded.stdout.strip() == "[]", loaded.stderr


def test_a_suspended_instance_costs_its_volumes_by_the_dated_ebs_table() -> None:
    table = price_table()
    assert table.ebs.date, "the storage prices say when they were compiled"
    assert ebs_gb_month("us-east-1", "gp3") == 0.08
    assert ebs_gb_month("eu-west-1", "gp3") == 0.088, "a region's own price"
    assert ebs_gb_month("us-east-2", "gp2") == 0.10, "else the reference times the multiplier"
    assert ebs_gb_month("mars-1", "gp3") is None and ebs_gb_month("us-east-1", "tape") is None
    # 100 GB of gp3 in us-east-1: $8 a month, 730 hours.
    assert storage_price_per_hour([(100, "gp3")], "us-east-1") == round(8 / 730, 6)
    assert storage_price_per_hour([(8, "gp3"), (100, "gp2")], "us-east-1") == round(
        (8 * 0.08 + 100 * 0.10) / 730, 6
    )
    assert storage_price_per_hour([(8, "tape")], "us-east-1") is None, "unknown: no price"
    small = storage_price_per_hour([(8, "gp3")], "us-east-1")
    running = hourly_price("t3.micro", "us-east-1", False)
    assert small is not None and running is not None and small < running / 10
