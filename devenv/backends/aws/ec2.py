"""The EC2 calls devenv makes, each turning AWS's errors into one actionable line.

boto3 is synchronous: every call runs in a thread so the worker's event loop keeps
heartbeating. Credentials come from boto3's standard chain; ``AWS_ENDPOINT_URL`` is
honoured by boto3 itself (tests point it at a moto server on loopback).

Errors: what the user must fix (credentials, instance type, image, quota, a refused
permission) is a ``ProvisioningError`` naming the ``aws.`` key; throttling, 5xx and
network trouble stay plain exceptions, so the activity retries.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from devenv.backends.base import ProvisioningError

TAG_TOKEN = "devenv:token"
TAG_NAME = "devenv:name"
TAG_WORKFLOW = "devenv:workflow-id"
TAG_OWNER = "devenv:owner"
TAG_MANAGED = "devenv:managed"
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
GONE_STATES = ("shutting-down", "terminated")
_CANONICAL = "/aws/service/canonical/ubuntu/server"
IMAGE_PARAMETERS = {
    "ubuntu-24.04": f"{_CANONICAL}/24.04/stable/current/{{arch}}/hvm/ebs-gp3/ami-id",
    "ubuntu-22.04": f"{_CANONICAL}/22.04/stable/current/{{arch}}/hvm/ebs-gp2/ami-id",
    "amazon-linux-2023": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}",
}
"""AWS's public SSM parameters naming each alias's current AMI."""
_UBUNTU_ARCH = {"x86_64": "amd64", "arm64": "arm64"}
_CREDENTIAL_CODES = {
    "AuthFailure",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "OptInRequired",
}
_QUOTA_CODES = {
    "InstanceLimitExceeded",
    "VcpuLimitExceeded",
    "MaxSpotInstanceCountExceeded",
    "InsufficientInstanceCapacity",
    "SpotMaxPriceTooLow",
    "InsufficientFreeAddressesInSubnet",
}
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4}, connect_timeout=10, read_timeout=30
)


@dataclass(frozen=True)
class Ec2Instance:
    """What devenv reads of one instance."""

    instance_id: str
    state: str
    instance_type: str
    launch_time: datetime
    public_ip: str | None
    private_ip: str | None
    tags: dict[str, str]
    state_reason: str | None

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Ec2Instance:
        reason = raw.get("StateReason") or {}
        return cls(
            instance_id=raw["InstanceId"],
            state=raw["State"]["Name"],
            instance_type=raw.get("InstanceType", ""),
            launch_time=raw["LaunchTime"],
            public_ip=raw.get("PublicIpAddress"),
            private_ip=raw.get("PrivateIpAddress"),
            tags={tag["Key"]: tag["Value"] for tag in raw.get("Tags", [])},
            state_reason=reason.get("Message") or reason.get("Code"),
        )


def error_code(problem: BaseException) -> str:
    if isinstance(problem, botocore.exceptions.ClientError):
        return str(problem.response.get("Error", {}).get("Code", ""))
    return ""


def _message(problem: botocore.exceptions.ClientError) -> str:
    return str(problem.response.get("Error", {}).get("Message", problem))[:300]


def client_token(instance_token: str) -> str:
    """RunInstances' ClientToken (at most 64 characters): one instance per environment run."""
    return hashlib.sha256(f"devenv:{instance_token}".encode()).hexdigest()[:64]


class Ec2:
    """One region's EC2 (and SSM, STS) for one environment's calls."""

    def __init__(self, region: str) -> None:
        self.region = region
        session = boto3.session.Session(region_name=region)
        self._ec2 = session.client("ec2", config=_CONFIG)
        self._session = session

    async def _call(self, what: str, function: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(function, **kwargs)
        except botocore.exceptions.NoCredentialsError:
            raise ProvisioningError(
                "AWS credentials: the devenv worker has none (it reads AWS_PROFILE, or "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, when it starts: ones exported "
                "after `devenv server` started are not seen); set them where the worker runs "
                "and restart it (`devenv server stop`, then `devenv server`, or the next "
                "`devenv start` starts one), or give its machine an instance role"
            ) from None
        except botocore.exceptions.ClientError as problem:
            code = error_code(problem)
            if code in _CREDENTIAL_CODES:
                raise ProvisioningError(
                    f"AWS credentials refused in {self.region} ({code}: {_message(problem)}); "
                    "check the worker's AWS_PROFILE or access keys"
                ) from None
            if code == "UnauthorizedOperation" or code == "AccessDenied":
                raise ProvisioningError(
                    f"AWS credentials may not {what} in {self.region} ({code}); grant the "
                    "worker's role ec2:RunInstances, DescribeInstances, TerminateInstances, "
                    "CreateTags, DescribeImages, DescribeInstanceTypes, ssm:GetParameter and, "
                    "to suspend, ec2:StopInstances, StartInstances, DescribeVolumes, "
                    "DescribeInstanceAttribute and ModifyInstanceAttribute"
                ) from None
            if code in _QUOTA_CODES:
                raise ProvisioningError(
                    f"EC2 refused to {what} in {self.region}: {code}: {_message(problem)}"
                ) from None
            raise

    # --- checks before anything is created --------------------------------------------------

    async def check_credentials(self) -> str:
        """The account id the credentials belong to (STS GetCallerIdentity)."""
        sts = self._session.client("sts", config=_CONFIG)
        found = await self._call("read the caller identity", sts.get_caller_identity)
        return str(found["Account"])

    async def architecture(self, instance_type: str) -> str:
        """x86_64 or arm64; ProvisioningError if the region has no such type."""
        try:
            found = await self._call(
                "describe instance types",
                self._ec2.describe_instance_types,
                InstanceTypes=[instance_type],
            )
        except botocore.exceptions.ClientError as problem:
            if error_code(problem) in ("InvalidInstanceType", "InvalidParameterValue"):
                raise ProvisioningError(
                    f"aws.instance_type: {instance_type!r} is not offered in {self.region}; "
                    "accepted: an EC2 instance type of that region, e.g. g5.xlarge"
                ) from None
            raise
        types = found.get("InstanceTypes") or []
        if not types:
            raise ProvisioningError(
                f"aws.instance_type: {instance_type!r} is not offered in {self.region}"
            )
        arches = types[0].get("ProcessorInfo", {}).get("SupportedArchitectures", ["x86_64"])
        return "arm64" if "arm64" in arches and "x86_64" not in arches else "x86_64"

    async def resolve_image(self, image: str, arch: str) -> tuple[str, str | None]:
        """(AMI id, its root device name); an alias through AWS's public SSM parameter."""
        ami = image
        if image in IMAGE_PARAMETERS:
            ssm_arch = _UBUNTU_ARCH[arch] if image.startswith("ubuntu") else arch
            name = IMAGE_PARAMETERS[image].format(arch=ssm_arch)
            ssm = self._session.client("ssm", config=_CONFIG)
            try:
                found = await self._call("read SSM parameters", ssm.get_parameter, Name=name)
            except botocore.exceptions.ClientError as problem:
                if error_code(problem) == "ParameterNotFound":
                    raise ProvisioningError(
                        f"aws.image: {image!r} has no {arch} image in {self.region} (SSM "
                        f"parameter {name} not found); accepted: an AMI id (ami-...)"
                    ) from None
                raise
            ami = str(found["Parameter"]["Value"])
        try:
            images = await self._call("describe images", self._ec2.describe_images, ImageIds=[ami])
        except botocore.exceptions.ClientError as problem:
            if error_code(problem).startswith("InvalidAMIID"):
                raise ProvisioningError(
                    f"aws.image: {ami!r} does not exist in {self.region} (or is not shared "
                    "with this account); accepted: an AMI id of that region"
                ) from None
            raise
        if not images.get("Images"):
            raise ProvisioningError(f"aws.image: {ami!r} does not exist in {self.region}")
        raw = images["Images"][0]
        image_arch = raw.get("Architecture")
        if image_arch and image_arch != arch:
            raise ProvisioningError(
                f"aws.image: {ami} is an {image_arch} image but the instance type is {arch}"
            )
        return ami, raw.get("RootDeviceName")

    # --- the security group ---------------------------------------------------------------

    async def ensure_ssh_group(self, subnet: str | None, cidrs: list[str]) -> str:
        """devenv's group allowing port 22 from ``cidrs`` only, in the subnet's VPC."""
        vpc = await self._vpc_of(subnet)
        digest = hashlib.sha256(f"{vpc}|{','.join(sorted(cidrs))}".encode()).hexdigest()[:12]
        name = f"devenv-ssh-{digest}"
        for _ in range(3):
            found = await self._call(
                "describe security groups",
                self._ec2.describe_security_groups,
                Filters=[
                    {"Name": "group-name", "Values": [name]},
                    {"Name": "vpc-id", "Values": [vpc]},
                ],
            )
            if found.get("SecurityGroups"):
                return str(found["SecurityGroups"][0]["GroupId"])
            try:
                created = await self._call(
                    "create a security group",
                    self._ec2.create_security_group,
                    GroupName=name,
                    Description="devenv: SSH from allow_ssh_from only",
                    VpcId=vpc,
                    TagSpecifications=[
                        {
                            "ResourceType": "security-group",
                            "Tags": [{"Key": TAG_MANAGED, "Value": "true"}],
                        }
                    ],
                )
            except botocore.exceptions.ClientError as problem:
                if error_code(problem) == "InvalidGroup.Duplicate":
                    continue  # another provision created it meanwhile
                raise
            group = str(created["GroupId"])
            await self._call(
                "authorize security group ingress",
                self._ec2.authorize_security_group_ingress,
                GroupId=group,
                IpPermissions=[
                    {
                        "IpProtocol": "tcp",
                        "FromPort": 22,
                        "ToPort": 22,
                        **_ranges(cidrs),
                    }
                ],
            )
            return group
        raise RuntimeError(f"security group {name} could not be found or created")

    async def _vpc_of(self, subnet: str | None) -> str:
        if subnet is not None:
            try:
                found = await self._call(
                    "describe subnets", self._ec2.describe_subnets, SubnetIds=[subnet]
                )
            except botocore.exceptions.ClientError as problem:
                if error_code(problem).startswith("InvalidSubnet"):
                    raise ProvisioningError(
                        f"aws.subnet: {subnet} does not exist in {self.region}"
                    ) from None
                raise
            return str(found["Subnets"][0]["VpcId"])
        found = await self._call(
            "describe VPCs",
            self._ec2.describe_vpcs,
            Filters=[{"Name": "is-default", "Values": ["true"]}],
        )
        if not found.get("Vpcs"):
            raise ProvisioningError(
                f"aws.subnet: {self.region} has no default VPC; accepted: a subnet id"
            )
        return str(found["Vpcs"][0]["VpcId"])

    # --- instances ------------------------------------------------------------------------

    async def run(self, **kwargs: Any) -> Ec2Instance:
        found = await self._call("run instances", self._ec2.run_instances, **kwargs)
        return Ec2Instance.of(found["Instances"][0])

    async def find(self, filters: list[dict[str, Any]]) -> list[Ec2Instance]:
        """Instances matching ``filters`` (any state unless filtered)."""
        instances: list[Ec2Instance] = []
        token: str | None = None
        while True:
            page_args: dict[str, Any] = {"Filters": filters}
            if token:
                page_args["NextToken"] = token
            found = await self._call(
                "describe instances", self._ec2.describe_instances, **page_args
            )
            for reservation in found.get("Reservations", []):
                instances.extend(Ec2Instance.of(raw) for raw in reservation["Instances"])
            token = found.get("NextToken")
            if not token:
                return instances

    async def by_token(self, instance_token: str) -> list[Ec2Instance]:
        """This environment run's instances that are not terminated (normally one)."""
        return await self.find(
            [
                {"Name": f"tag:{TAG_TOKEN}", "Values": [instance_token]},
                {"Name": "instance-state-name", "Values": [*LIVE_STATES, "shutting-down"]},
            ]
        )

    async def describe(self, instance_id: str) -> Ec2Instance | None:
        """The instance, or None when EC2 no longer knows it."""
        try:
            found = await self._call(
                "describe instances", self._ec2.describe_instances, InstanceIds=[instance_id]
            )
        except botocore.exceptions.ClientError as problem:
            if error_code(problem) == "InvalidInstanceID.NotFound":
                return None
            raise
        for reservation in found.get("Reservations", []):
            for raw in reservation["Instances"]:
                return Ec2Instance.of(raw)
        return None

    async def terminate(self, instance_ids: list[str]) -> None:
        if not instance_ids:
            return
        try:
            await self._call(
                "terminate instances",
                self._ec2.terminate_instances,
                InstanceIds=instance_ids,
            )
        except botocore.exceptions.ClientError as problem:
            if error_code(problem) != "InvalidInstanceID.NotFound":
                raise

    # --- suspend and resume ---------------------------------------------------------------

    async def stop(self, instance_id: str) -> None:
        """StopInstances: the machine halts, its EBS volumes are kept."""
        await self._call("stop instances", self._ec2.stop_instances, InstanceIds=[instance_id])

    async def start(self, instance_id: str) -> None:
        """StartInstances: a stopped machine boots again (a new public address)."""
        await self._call("start instances", self._ec2.start_instances, InstanceIds=[instance_id])

    async def shutdown_behavior(self, instance_id: str) -> str:
        """What a shutdown from inside does: ``stop`` or ``terminate``."""
        found = await self._call(
            "describe instance attributes",
            self._ec2.describe_instance_attribute,
            InstanceId=instance_id,
            Attribute="instanceInitiatedShutdownBehavior",
        )
        return str(found.get("InstanceInitiatedShutdownBehavior", {}).get("Value", ""))

    async def set_shutdown_behavior(self, instance_id: str, behavior: str) -> None:
        await self._call(
            "modify instance attributes",
            self._ec2.modify_instance_attribute,
            InstanceId=instance_id,
            Attribute="instanceInitiatedShutdownBehavior",
            Value=behavior,
        )

    async def volumes(self, instance_id: str) -> list[tuple[int, str]]:
        """(size in GB, volume type) of every EBS volume attached to the instance."""
        found = await self._call(
            "describe volumes",
            self._ec2.describe_volumes,
            Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}],
        )
        return [
            (int(volume.get("Size", 0)), str(volume.get("VolumeType") or "gp3"))
            for volume in found.get("Volumes", [])
        ]


def _ranges(cidrs: list[str]) -> dict[str, Any]:
    v4 = [
        {"CidrIp": cidr, "Description": "devenv allow_ssh_from"}
        for cidr in cidrs
        if ":" not in cidr
    ]
    v6 = [
        {"CidrIpv6": cidr, "Description": "devenv allow_ssh_from"} for cidr in cidrs if ":" in cidr
    ]
    ranges: dict[str, Any] = {}
    if v4:
        ranges["IpRanges"] = v4
    if v6:
        ranges["Ipv6Ranges"] = v6
    return ranges
