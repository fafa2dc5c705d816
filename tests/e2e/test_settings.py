"""Settings reach every playbook from the same owner: the inventory overrides a default in run_server.yml and
manage_users.yml alike, and a key in stack.yml that no role knows stops both before anything changes."""
import yaml

from mlops_stack.stackenv import REPO, ansible_playbook, recap


def words(output):
    """Play output with its line wrapping undone (Ansible folds long messages)."""
    return " ".join(output.split())


def inventory_with(tmp_path, **host_vars):
    inventory = yaml.safe_load((REPO / "inventory.yml").read_text())
    inventory["all"]["children"]["stack_server"]["hosts"]["localhost"].update(host_vars)
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return str(path)


def test_an_inventory_setting_reaches_both_playbooks(stack, tmp_path):
    port = stack.settings["mlflow_server_port"]
    # Positive control: without the override run_server.yml uses the stack's own port.
    server = ansible_playbook("playbooks/run_server.yml", "--check", "--tags", "preflight")
    assert f"mlflow: {port}" in server.stdout
    moved = inventory_with(tmp_path, mlflow_server_port=3399)
    server = ansible_playbook("playbooks/run_server.yml", "-i", moved, "--check", "--tags", "preflight")
    assert "mlflow: 3399" in server.stdout and f"mlflow: {port}" not in server.stdout
    # manage_users.yml looks for the database of the stack named in the inventory, which does not run.
    (tmp_path / "other").mkdir()
    renamed = inventory_with(tmp_path / "other", stack_name="elsewhere")
    users = ansible_playbook("playbooks/manage_users.yml", "-i", renamed, "--tags", "add", "-e", "username=probe",
                             "--check", check=False)
    assert users.returncode != 0
    assert "Cannot read the stack's users from the database at elsewhere-database:3306" in words(users.stdout), \
        users.stdout[-3000:]


def test_an_unknown_key_in_stack_yml_stops_every_play(stack):
    settings = REPO / "stack.yml"
    original = settings.read_text()
    try:
        settings.write_text(original + "databse_port: 3307\n")
        runs = [ansible_playbook("playbooks/run_server.yml", "--check", check=False),
                ansible_playbook("playbooks/manage_users.yml", "--tags", "add", "-e", "username=probe", check=False)]
    finally:
        settings.write_text(original)
    for run in runs:
        assert run.returncode != 0
        assert "stack.yml: unknown setting databse_port (did you mean database_port?)" in words(run.stdout), run.stdout[-3000:]
        assert recap(run.stdout)["changed"] == 0
