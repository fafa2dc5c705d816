"""Filters over the stack's registry and settings (ansible/plugins/filter/stack.py) that need no running stack."""
import importlib.util
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

SPEC = importlib.util.spec_from_file_location("stack_filter", Path(__file__).parents[2] / "ansible/plugins/filter/stack.py")
stack_filter = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(stack_filter)


@pytest.mark.parametrize("subnets, host", [
    (["172.18.0.0/16"], "172.18.0.0/255.255.0.0"),
    (["fd00::/64", "10.20.30.0/24"], "10.20.30.0/255.255.255.0"),  # MariaDB's netmask form is IPv4's
])
def test_the_database_host_of_the_stack_network_is_its_ipv4_subnet(subnets, host):
    assert stack_filter.stack_database_host(subnets) == host


def test_a_network_without_ipv4_is_named():
    with pytest.raises(AnsibleFilterError, match=r"^the stack network has no IPv4 subnet \(has fd00::/64\)$"):
        stack_filter.stack_database_host(["fd00::/64"])


@pytest.mark.parametrize("host, address", [
    ("192.0.2.10", True), ("fd00::2", True), ("mlops.example.org", False), ("localhost", False),
    ("cafe", False), ("beef", False),  # names that a pattern of digits and hex letters took for addresses
])
def test_an_address_is_told_from_a_name(host, address):
    assert stack_filter.stack_is_address(host) is address


def test_the_metrics_token_is_a_jwt_for_prometheus_signed_with_the_secret_key():
    """The object store's format (mc admin prometheus generate): HS512, issuer prometheus, subject the access key;
    the same key gives the same token, so a second run changes nothing."""
    import base64
    import hashlib
    import hmac
    import json

    token = stack_filter.stack_metrics_token("s3cret", "metrics")
    header, claims, signature = token.split(".")

    def decoded(part):
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    assert json.loads(decoded(header)) == {"alg": "HS512", "typ": "JWT"}
    assert json.loads(decoded(claims)) == {"exp": 4102444800, "iss": "prometheus", "sub": "metrics"}
    assert decoded(signature) == hmac.new(b"s3cret", f"{header}.{claims}".encode(), hashlib.sha512).digest()
    assert token == stack_filter.stack_metrics_token("s3cret", "metrics")
    assert token != stack_filter.stack_metrics_token("other", "metrics")
