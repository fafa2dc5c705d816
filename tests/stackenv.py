"""Test-only helper: import a custom module for its pure functions. What the tests and the benchmarks
share (playbooks, stack.yml, credentials) is the package mlops_stack.stackenv."""
import importlib.util

from mlops_stack.stackenv import REPO


def load_ansible_module(name):
    """ansible/plugins/modules/<name>.py imported for its pure functions; its `ansible.module_utils.<x>`
    imports find ansible/plugins/module_utils, as when Ansible ships the module to a host."""
    import ansible.module_utils
    utils = str(REPO / "ansible/plugins/module_utils")
    if utils not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(utils)
    spec = importlib.util.spec_from_file_location(name, REPO / "ansible/plugins/modules" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
