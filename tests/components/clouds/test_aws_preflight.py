"""`coco check --live` for AWS against recorded EC2 responses replayed by botocore's Stubber on
real boto3 clients (the Stubber validates each response and each request against the EC2
service model): an offered type passes, a region without SEV-SNP, a zone without the type, a
size without SNP and a non-UEFI AMI give errors at their key paths with places that work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from components import preflight
from components.aws import preflight as aws_preflight
from spec.errors import NoCredentials
from spec.validate import validate

FIXTURES = Path(__file__).parent / "fixtures" / "aws"
SNP_FILTER = [{"Name": "processor-info.supported-features", "Values": ["amd-sev-snp"]}]


def recorded(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())  # type: ignore[no-any-return]


class Ec2Stubs:
    """One stubbed boto3 EC2 client per region; responses are queued per region."""

    def __init__(self) -> None:
        self.stubbers: dict[str, Stubber] = {}
        self.clients: dict[str, Any] = {}

    def region(self, region: str) -> Stubber:
        if region not in self.stubbers:
            client = boto3.client(
                "ec2", region_name=region, aws_access_key_id="AKIDTEST", aws_secret_access_key="x"
            )
            self.clients[region] = client
            self.stubbers[region] = Stubber(client)
            self.stubbers[region].activate()
        return self.stubbers[region]

    def snp_types(self, region: str, *pages: str) -> None:
        for i, page in enumerate(pages):
            params: dict[str, Any] = {"Filters": SNP_FILTER}
            if i:
                params["NextToken"] = recorded(pages[i - 1])["NextToken"]
            self.region(region).add_response("describe_instance_types", recorded(page), params)

    def offerings(self, region: str, instance_type: str) -> None:
        self.region(region).add_response(
            "describe_instance_type_offerings",
            recorded("describe_instance_type_offerings_az"),
            {
                "LocationType": "availability-zone",
                "Filters": [{"Name": "instance-type", "Values": [instance_type]}],
            },
        )

    def ec2(self) -> aws_preflight.Ec2:
        return aws_preflight.Ec2(lambda region: self.clients[region])

    def assert_all_used(self) -> None:
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()


EU = ("describe_instance_types_snp_page1", "describe_instance_types_snp_page2")


def spec_of(pool: dict[str, Any], region: str = "eu-west-1", **image: str) -> Any:
    spec, _ = validate(
        {
            "coco:cluster": {"provider": "eks", "region": region},
            "coco:nodePools": [{"name": "snp", "tee": "snp", **pool}],
            "coco:image": image or {"recipe": "podvm"},
        },
        stack="t",
    )
    return spec


@pytest.fixture
def stubs() -> Ec2Stubs:
    return Ec2Stubs()


class TestInstanceTypes:
    def test_offered_type_passes(self, stubs):
        stubs.snp_types("eu-west-1", *EU)
        stubs.offerings("eu-west-1", "m6a.large")
        issues = aws_preflight.live_check(spec_of({"zone": "eu-west-1a"}), client=stubs.ec2())
        assert issues == []
        stubs.assert_all_used()  # both pages were read

    def test_region_without_snp(self, stubs):
        stubs.snp_types("sa-east-1", "describe_instance_types_snp_none")
        stubs.snp_types("eu-west-1", *EU)  # the known regions are asked for the hint
        stubs.snp_types("us-east-2", "describe_instance_types_snp_none")
        issues = aws_preflight.live_check(spec_of({}, region="sa-east-1"), client=stubs.ec2())
        (issue,) = issues
        assert issue.path == "coco:nodePools[0].region" and issue.severity == "error"
        assert "no SEV-SNP instance type in sa-east-1" in issue.message
        assert issue.hint == "m6a.large runs SEV-SNP in: eu-west-1"
        stubs.assert_all_used()

    def test_zone_without_the_type(self, stubs):
        stubs.snp_types("eu-west-1", *EU)
        stubs.offerings("eu-west-1", "m6a.large")
        (issue,) = aws_preflight.live_check(spec_of({"zone": "eu-west-1c"}), client=stubs.ec2())
        assert issue.path == "coco:nodePools[0].zone"
        assert issue.message == "m6a.large is not offered in eu-west-1c"
        assert issue.hint.endswith("eu-west-1a, eu-west-1b")

    def test_size_without_snp(self, stubs):
        stubs.snp_types("eu-west-1", *EU)
        (issue,) = aws_preflight.live_check(
            spec_of({"instanceType": "m6a.48xlarge"}), client=stubs.ec2()
        )
        assert issue.path == "coco:nodePools[0].instanceType"
        assert issue.hint == "SEV-SNP sizes there: m6a.2xlarge, m6a.large, m6a.xlarge"

    def test_refused_call_named(self, stubs):
        stubs.region("eu-west-1").add_client_error(
            "describe_instance_types", "UnauthorizedOperation", "not allowed"
        )
        (issue,) = aws_preflight.live_check(spec_of({}), client=stubs.ec2())
        assert issue.path == "coco:nodePools[0].region"
        assert "UnauthorizedOperation" in issue.message


class TestPodVmImage:
    @pytest.mark.parametrize(
        ("fixture", "problem"),
        [
            ("describe_images_uefi", None),
            ("describe_images_no_boot_mode", "SEV-SNP instances boot UEFI only"),
            ("describe_images_none", "does not exist in eu-west-1"),
        ],
    )
    def test_boot_mode(self, stubs, fixture, problem):
        ami = "ami-0123456789abcdef0"
        stubs.snp_types("eu-west-1", *EU)
        stubs.offerings("eu-west-1", "m6a.large")
        stubs.region("eu-west-1").add_response(
            "describe_images", recorded(fixture), {"ImageIds": [ami]}
        )
        issues = aws_preflight.live_check(
            spec_of({"zone": "eu-west-1a"}, podvmImage=ami), client=stubs.ec2()
        )
        if problem is None:
            assert issues == []
        else:
            (issue,) = issues
            assert issue.path == "coco:image.podvmImage" and problem in issue.message


class TestCredentials:
    def test_no_credentials_raises(self, monkeypatch, tmp_path):
        for key in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_ARN",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        with pytest.raises(NoCredentials) as info:
            aws_preflight.live_check(spec_of({}))
        assert info.value.cloud == "aws" and "AWS_PROFILE" in info.value.hint

    def test_runner_uses_the_aws_check(self, stubs):
        stubs.snp_types("eu-west-1", *EU)
        stubs.offerings("eu-west-1", "m6a.large")
        result = preflight.run(
            spec_of({"zone": "eu-west-1c"}),
            {"aws": lambda s: aws_preflight.live_check(s, client=stubs.ec2())},
        )
        assert result.checked == ["aws"]
        assert [i.path for i in result.issues] == ["coco:nodePools[0].zone"]
