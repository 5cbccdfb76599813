"""``backend: aws``: the ``aws`` section, validated before anything is created.

Light on purpose (the CLI and the SDK import it to validate a file): no boto3. The
region is checked against botocore's shipped region list when botocore is installed
(offline, no request); everything that needs the account (the instance type's
availability, the image, credentials) is checked by the worker before it creates
anything.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import string
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from devenv.models.config import ADMIN_ONLY, EnvironmentConfig

DEFAULT_IMAGE = "ubuntu-24.04"
DEFAULT_ENDPOINT = "{public_ip}:22"
DEFAULT_READY_TIMEOUT = 600
ENDPOINT_FIELDS = ("public_ip", "private_ip", "instance_id")
IMAGE_ALIASES = ("ubuntu-24.04", "ubuntu-22.04", "amazon-linux-2023")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_AMI = re.compile(r"^ami-[0-9a-f]{8,17}$")
_SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_GROUP = re.compile(r"^sg-[0-9a-f]{8,17}$")
_TAG_KEY = re.compile(r"^[A-Za-z0-9 _.:/=+@-]{1,128}$")
_TAG_VALUE = re.compile(r"^[A-Za-z0-9 _.:/=+@-]{0,256}$")
_DURATION = re.compile(r"^([0-9]+)(s|m|h|d)?$")


def known_regions() -> list[str] | None:
    """EC2's regions from botocore's shipped endpoint data; None without botocore."""
    try:
        import botocore.session
    except ImportError:
        return None
    session = botocore.session.get_session()
    found: set[str] = set()
    for partition in session.get_available_partitions():
        found.update(session.get_available_regions("ec2", partition_name=partition))
    return sorted(found)


def _seconds(value: object, low: int, high: int, accepted: str) -> int:
    match = _DURATION.fullmatch(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a duration; accepted: seconds, or 90s, 10m, 1h, 1d")
    seconds = (
        int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}[match.group(2)]
    )
    if not low <= seconds <= high:
        raise ValueError(f"{value!r} is out of range; accepted: {accepted}")
    return seconds


def render_endpoint(template: str, **values: str) -> str:
    """``ssh_endpoint`` with the instance's addresses filled in (KeyError: a missing one)."""
    return template.format(**values)


class AwsSection(BaseModel):
    """Where and what to run on EC2, and how devenv reaches the machine over SSH."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str = Field(
        description="The EC2 region, e.g. eu-west-1: one known to botocore (a typo gets "
        "'did you mean').",
    )
    instance_type: str | None = Field(
        default=None,
        description="`FAMILY.SIZE`, e.g. g5.xlarge, checked against the region before "
        "anything is created; default: the cheapest type in devenv's price table that "
        "meets `resources` (cpu, memory, gpu such as `A10G:2`).",
    )
    image: str = Field(
        default=DEFAULT_IMAGE,
        description=f"An AMI id (ami-...) or one of {', '.join(IMAGE_ALIASES)}, resolved "
        "through AWS's public SSM parameters for the instance type's architecture.",
    )
    subnet: str | None = Field(default=None, description="Subnet id; default: the default VPC's.")
    security_group: str | None = Field(
        default=None,
        description="Security group id; default: devenv creates one allowing SSH only "
        "from allow_ssh_from.",
    )
    allow_ssh_from: list[str] = Field(
        default_factory=list,
        validate_default=True,
        description="CIDRs that may reach port 22 (required when devenv creates the group; "
        "devenv never looks your address up on the internet), e.g. `203.0.113.7/32`; "
        "required without `security_group`.",
    )
    spot: bool = Field(
        default=False, description="Run as a one-time spot instance, terminated on interruption."
    )
    ssh_user: str = Field(default="ubuntu", description="The image's admin login.")
    ssh_endpoint: str = Field(
        default=DEFAULT_ENDPOINT,
        description="How devenv reaches the machine: HOST:PORT, a template over "
        "{public_ip}, {private_ip}, {instance_id} (private subnets, bastions, port maps). "
        "Admin-only over the HTTP API: it names where the server connects.",
        json_schema_extra={ADMIN_ONLY: True},
    )
    ready_timeout: int = Field(
        default=DEFAULT_READY_TIMEOUT,
        description="Seconds (or 10m, 1h; 5s to 1h) until provisioning gives up and "
        "terminates what it made.",
    )
    price_per_hour: float | None = Field(
        default=None, ge=0, description="USD per hour, overriding devenv's price table."
    )
    failsafe_after: int | None = Field(
        default=None,
        description="Seconds (or 30m, 2h) with no control plane reading the machine before "
        "it enforces the idle rule itself; default: the longer of 1h and inactivity_duration.",
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="Extra tags on the instance and its volumes (not `aws:` or `devenv:`).",
    )

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        known = known_regions()
        if not _REGION.fullmatch(value) or (known is not None and value not in known):
            close = difflib.get_close_matches(value, known or [], n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"{value!r} is not an EC2 region; {hint}accepted: a region name such as "
                "us-east-1 or eu-west-1"
            )
        return value

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str | None) -> str | None:
        if value is not None and not _INSTANCE_TYPE.fullmatch(value):
            raise ValueError(
                f"{value!r} is not an instance type; accepted: FAMILY.SIZE such as g5.xlarge"
            )
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if value not in IMAGE_ALIASES and not _AMI.fullmatch(value):
            raise ValueError(
                f"{value!r} is not an image; accepted: an AMI id (ami-0abc...) or one of "
                f"{', '.join(IMAGE_ALIASES)}"
            )
        return value

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, value: str | None) -> str | None:
        if value is not None and not _SUBNET.fullmatch(value):
            raise ValueError(f"{value!r} is not a subnet id; accepted: subnet-0abc...")
        return value

    @field_validator("security_group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None and not _GROUP.fullmatch(value):
            raise ValueError(f"{value!r} is not a security group id; accepted: sg-0abc...")
        return value

    @field_validator("allow_ssh_from", mode="before")
    @classmethod
    def _cidrs(cls, value: object) -> object:
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list):
            return value
        for item in values:
            try:
                ipaddress.ip_network(str(item), strict=True)
            except ValueError:
                raise ValueError(
                    f"{item!r} is not a CIDR; accepted: an address block such as "
                    "203.0.113.7/32 (host bits zero)"
                ) from None
        return [str(item) for item in values]

    @field_validator("allow_ssh_from")
    @classmethod
    def _group_source(cls, value: list[str], info: ValidationInfo) -> list[str]:
        """Creating a security group needs the CIDRs it lets in."""
        if not value and info.data.get("security_group") is None:
            raise ValueError(
                "required when devenv creates the security group; accepted: your CIDRs "
                "(e.g. [203.0.113.7/32]), or security_group: sg-... instead"
            )
        return value

    @field_validator("ssh_user")
    @classmethod
    def _user(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", value):
            raise ValueError(f"{value!r} is not a login name; accepted: e.g. ubuntu, ec2-user")
        return value

    @field_validator("ssh_endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        from devenv.backends.ssh.config import parse_host

        try:
            names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError:
            names = {"?"}
        unknown = names - set(ENDPOINT_FIELDS)
        if unknown:
            raise ValueError(
                f"{value!r} uses {', '.join(sorted(unknown))}; accepted: HOST:PORT with "
                "{public_ip}, {private_ip} or {instance_id} in it"
            )
        sample = render_endpoint(
            value, public_ip="192.0.2.1", private_ip="192.0.2.2", instance_id="i-0abc"
        )
        try:
            parse_host(sample)
        except ValueError:
            raise ValueError(
                f"{value!r} does not make a HOST:PORT; accepted: e.g. {{public_ip}}:22, "
                "{private_ip}:22, bastion.example.com:2201"
            ) from None
        return value

    @field_validator("ready_timeout", mode="before")
    @classmethod
    def _ready_timeout(cls, value: object) -> object:
        return _seconds(value, 5, 3600, "5s to 1h")

    @field_validator("failsafe_after", mode="before")
    @classmethod
    def _failsafe_after(cls, value: object) -> object:
        return None if value is None else _seconds(value, 1, 7 * 86400, "1s to 7d")

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            if key.lower().startswith(("aws:", "devenv:")) or not _TAG_KEY.fullmatch(key):
                raise ValueError(
                    f"tag {key!r} is not allowed; accepted: keys of letters, digits and "
                    "' _.:/=+@-' not starting with aws: or devenv: (devenv sets its own)"
                )
            if not _TAG_VALUE.fullmatch(str(text)):
                raise ValueError(f"tag {key!r}: value {text!r} has characters EC2 refuses")
        return value


class AwsConfig(EnvironmentConfig):
    """Environments on EC2 instances of their own, ended by devenv or by themselves."""

    backend: Literal["aws"] = Field(default="aws", description="An EC2 instance per environment.")
    aws: AwsSection = Field(description="Region, instance and network.")

    suspendable: ClassVar[bool] = True
    """``on_idle: suspend`` works: the instance is stopped with its EBS volumes kept."""

    def activity_task_queue(self) -> str | None:
        """The shared queue: any worker with AWS credentials can reach the account."""
        return None

    def backend_section(self) -> dict[str, Any]:
        return self.aws.model_dump(mode="json")
