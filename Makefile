# The two set-up commands of the README: `make up` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: up down purge test lint bench venv

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

up: venv
	$(BIN)/ansible-playbook playbooks/run_server.yml

down: venv
	$(BIN)/ansible-playbook playbooks/teardown.yml

purge: venv
	$(BIN)/ansible-playbook playbooks/teardown.yml -e teardown_remove_data=true

test: venv
	$(BIN)/pytest tests

lint: venv
	$(BIN)/ansible-lint

bench: venv
	$(BIN)/python bench/provisioning.py
	$(BIN)/python bench/users.py
