"""The linear strategy on Mitogen (the `mitogen` package in requirements.txt), the strategy of ansible.cfg.

Mitogen keeps one Python on each host for the whole play and runs every module in it, where plain Ansible
starts a new interpreter per task that compiles ansible.module_utils from its zip again: a run of
run_server.yml that changes nothing takes half the time. This file makes the package's strategy findable
from the repository (ansible.cfg need not name the virtual environment's path) and turns its CPU pinning off.
"""
import ansible_mitogen.affinity
import ansible_mitogen.loaders
import ansible_mitogen.strategy

# Mitogen pins its processes to CPUs, and every process a module starts inherits the pin: dockerd, started by the
# docker_engine role where no init system runs, would give every container one CPU. Its no-op policy pins nothing.
ansible_mitogen.affinity.policy = ansible_mitogen.affinity.Policy()

Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):
    pass
