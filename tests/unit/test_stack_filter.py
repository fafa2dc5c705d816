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
