"""The linear strategy on Mitogen (the `mitogen` package in requirements.txt), the strategy of ansible.cfg.

Mitogen keeps one Python on each host for the whole play and runs every module in it, where plain Ansible
starts a new interpreter per task that compiles ansible.module_utils from its zip again: a run of
run_server.yml that changes nothing takes half the time. This file makes the package's strategy findable
from the repository (ansible.cfg need not name the virtual environment's path), turns its CPU pinning off, and
lists the installed collections once per run instead of once per task.
"""
import functools

import ansible.collections.list
import ansible_mitogen.affinity
import ansible_mitogen.loaders
import ansible_mitogen.strategy

# Mitogen pins its processes to CPUs, and every process a module starts inherits the pin: dockerd, started by the
# docker_engine role where no init system runs, would give every container one CPU. Its no-op policy pins nothing.
ansible_mitogen.affinity.policy = ansible_mitogen.affinity.Policy()

Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


# Each task runs in a process forked from the controller, and Mitogen lists every installed collection (the ansible
# package brings about ninety) before each task of a collection's module: 0.2 s a task here, a sixth of a run of
# run_server.yml that changes nothing. The list does not change during a run: made once in the controller, before
# the first fork, every task's process inherits it.
_list_collection_dirs = ansible.collections.list.list_collection_dirs


@functools.cache
def _installed_collections():
    return tuple(_list_collection_dirs())


def list_collection_dirs(*args, **kwargs):
    return iter(_installed_collections()) if not (args or kwargs) else _list_collection_dirs(*args, **kwargs)


ansible.collections.list.list_collection_dirs = list_collection_dirs


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):
    def run(self, iterator, play_context):
        _installed_collections()
        return super().run(iterator, play_context)
