# The two set-up commands of the README: `make up` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# gitlab-ci-local runs extras/gitlab-ci.yml in the tests (4.74+ needs Node 22); Debian's chromium is the
# browser of tests/e2e/test_browser.py.
TOOLS := .tools
GITLAB_CI_LOCAL := gitlab-ci-local@4.73.0

.PHONY: up down purge status backup restore test lint bench venv tools

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

# The student's environment for the MNIST demo (demo/README.md).
DEMO_VENV := .venv-demo

.PHONY: demo-venv
demo-venv: $(DEMO_VENV)/.installed

$(DEMO_VENV)/.installed: demo/environments/requirements.txt
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/pip install --quiet -r demo/environments/requirements.txt
	touch $@

tools: $(TOOLS)/.installed

# gitlab-ci-local copies the project into each job with rsync, which minimal Debian images lack.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(TOOLS)/.installed: Makefile
	command -v rsync >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq rsync; }
	command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	npm install --silent --no-fund --no-audit --prefix $(TOOLS) $(GITLAB_CI_LOCAL)
	touch $@

up: venv
	$(BIN)/ansible-playbook playbooks/run_server.yml $(ARGS)

down: venv
	$(BIN)/ansible-playbook playbooks/teardown.yml

purge: venv
	$(BIN)/ansible-playbook playbooks/teardown.yml -e teardown_remove_data=true

# The services' health, the disks, the backups and warnings (make status ARGS="-e usage=yes -e strict=yes").
status: venv
	$(BIN)/ansible-playbook playbooks/status.yml $(ARGS)

# A backup of the running stack into a new folder of backup_dir (/var/backups/<stack_name>).
backup: venv
	$(BIN)/ansible-playbook playbooks/backup.yml

# make restore BACKUP=/var/backups/mlops/<time> [PASSPHRASE_FILE=<file>]: onto an empty stack (make purge first);
# PASSPHRASE_FILE where the backup's credentials are encrypted (backup_passphrase_file).
restore: venv
	$(BIN)/ansible-playbook playbooks/restore.yml -e backup=$(BACKUP) $(if $(PASSPHRASE_FILE),-e backup_passphrase_file=$(PASSPHRASE_FILE))

# The Python environment and the test tools (apt, npm) install side by side.
test:
	$(MAKE) --no-print-directory -j2 venv tools
	$(BIN)/pytest tests

lint: venv
	$(BIN)/ansible-lint

bench: venv
	$(BIN)/python bench/provisioning.py
	$(BIN)/python bench/users.py
