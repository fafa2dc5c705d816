"""Adding a user is all or nothing, and removing one leaves nothing another can inherit. Each test first
claims a future student's name the way a student (or a leftover) would, then checks that the add refuses,
naming what is taken and whose it is, and that no service got anything; then that the add works once the
claim is gone. Removal is checked by what the services still hold afterwards."""
import json
import urllib.parse
import uuid

import pytest
import urllib3
from minio import MinioAdmin
from minio.credentials import StaticProvider
from minio.error import MinioAdminException

from mlops_stack.stackenv import REPO, user_env, user_s3, write_roster
from roster import STUDENT_B, manage, root_sql, user_rows
from zenml_client import zenml_as


def admin_minio(stack, access_key=None, secret_key=None):
    url = urllib.parse.urlparse(stack.url("object_store"))
    return MinioAdmin(endpoint=url.netloc, http_client=urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=stack.ca_file),
                      credentials=StaticProvider(access_key or stack.settings["object_store_root_user"],
                                                 secret_key or stack.secret("object_store_root_password")))


def as_zenml_admin(stack, code):
    return zenml_as(stack.url("zenml"), stack.settings["zenml_server_admin_username"],
                    stack.secret("zenml_server_admin_password"), code)


def nothing_of(stack, name):
    """What any service holds of user `name` (empty when the add changed nothing)."""
    import requests
    found = []
    if (name, "developer") in user_rows(stack):
        found.append("row")
    if (REPO / "credentials" / "users" / name).exists():
        found.append("password folder")
    with root_sql(stack) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM mysql.user WHERE User = %s", (name,))
        found += ["database account"] * cur.fetchone()[0]
    answer = requests.get(f"{stack.url('mlflow')}/api/2.0/mlflow/users/get", params={"username": name}, timeout=30,
                          auth=(stack.settings["mlflow_server_admin_username"], stack.secret("mlflow_server_admin_password")))
    found += ["MLflow account"] if answer.status_code == 200 else []
    zenml = as_zenml_admin(stack, f"""
        from zenml.models import UserFilter
        result = [u.name for u in Client().zen_store.list_users(UserFilter(name="{name}")).items]
    """)
    found += ["ZenML account"] * len(zenml)
    return found


def refused_add(stack, name, *expected):
    result = manage("--tags", "add", "-e", f"username={name}", "-e", "role=developer", check=False)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output[-2000:]
    for phrase in expected:
        assert phrase in output, (phrase, output[-3000:])
    assert nothing_of(stack, name) == []


def test_a_student_cannot_make_an_access_key(users, stack):
    b = users[STUDENT_B]
    student = admin_minio(stack, b["AWS_ACCESS_KEY_ID"], b["AWS_SECRET_ACCESS_KEY"])
    with pytest.raises(MinioAdminException) as denied:
        student.add_service_account(access_key="it-fut1", secret_key=uuid.uuid4().hex)
    assert json.loads(denied.value._body)["Code"] == "AccessDenied"
    # The student's own keys work; an administrator may still make access keys (the next test does).
    assert user_s3(b).list_objects_v2(Bucket=b["STACK_BUCKET"])["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_an_access_key_named_after_a_future_student_stops_the_add(users, stack):
    root = admin_minio(stack)
    root.add_service_account(access_key="it-fut1", secret_key=uuid.uuid4().hex)
    try:
        refused_add(stack, "it-fut1", "object store: already taken, nothing was changed",
                    f"access key it-fut1 (a service account of {stack.settings['object_store_root_user']})")
    finally:
        root.delete_service_account("it-fut1")


def test_an_object_store_user_left_under_a_future_students_name_stops_the_add(users, stack):
    root = admin_minio(stack)
    root.user_add("it-fut4", uuid.uuid4().hex)
    try:
        refused_add(stack, "it-fut4", "object store: already taken, nothing was changed - user it-fut4")
    finally:
        root.user_remove("it-fut4")


def test_a_stack_named_after_a_future_student_stops_the_add(users, stack):
    b = users[STUDENT_B]
    as_b = lambda code: zenml_as(b["ZENML_STORE_URL"], STUDENT_B, b["ZENML_STORE_PASSWORD"], code)  # noqa: E731
    as_b("""
        c = Client()
        c.create_stack("it-fut2", components={"orchestrator": "%s-local", "artifact_store": "%s-artifacts"})
        result = True
    """ % (STUDENT_B, STUDENT_B))
    try:
        refused_add(stack, "it-fut2", "ZenML: already taken, nothing was changed",
                    f"it-fut2: stack it-fut2 (owned by {STUDENT_B})")
    finally:
        as_b('c = Client(); c.delete_stack("it-fut2"); result = True')


def test_an_experiment_left_under_a_future_students_name_stops_the_add(users, stack):
    import requests
    admin = (stack.settings["mlflow_server_admin_username"], stack.secret("mlflow_server_admin_password"))
    api = f"{stack.url('mlflow')}/api/2.0/mlflow"
    name = "it-fut3.mnist"
    experiment = requests.post(f"{api}/experiments/create", json={"name": name}, auth=admin, timeout=30).json()
    try:
        refused_add(stack, "it-fut3", "MLflow: already taken, nothing was changed",
                    f"experiment {name} (managed by {admin[0]})")
    finally:
        requests.post(f"{api}/experiments/update", auth=admin, timeout=30,
                      json={"experiment_id": experiment["experiment_id"], "new_name": f"_test.{uuid.uuid4().hex[:6]}"})
        requests.post(f"{api}/experiments/delete", json=experiment, auth=admin, timeout=30)


def test_the_names_whose_claims_are_gone_can_be_added(users, stack, tmp_path):
    """The positive control of the four tests above, in one roster: once each claim is deleted, its name is added
    and removed again."""
    names = ["it-fut1", "it-fut2", "it-fut3", "it-fut4"]
    roster = write_roster(tmp_path / "freed.csv", names)
    manage("--tags", "add", "-e", f"roster={roster}")
    assert {(name, "developer") for name in names} <= set(user_rows(stack))
    manage("--tags", "remove", "-e", f"roster={roster}", "-e", "confirm=yes")
    assert not {name for name, _role in user_rows(stack)} & set(names)


def test_removal_deletes_everything_the_user_made_in_zenml_whatever_its_password(stack, own_user):
    old = own_user("it-gone")
    password = old["ZENML_STORE_PASSWORD"]
    as_old = lambda code, pw=password: zenml_as(old["ZENML_STORE_URL"], "it-gone", pw, code)  # noqa: E731
    old_id = as_old(f"""
        c = Client()
        c.create_secret("notes", values={{"token": "old secret"}}, private=True)
        c.create_secret("it-gone-public", values={{"token": "old public"}}, private=False)
        c.create_stack("scratch", components={{"orchestrator": "it-gone-local", "artifact_store": "it-gone-artifacts"}})
        c.create_tag(name="it-gone-{uuid.uuid4().hex[:6]}")  # ZenML keeps an account that owns anything it cannot delete
        result = str(c.active_user.id)
    """)
    changed = "changed-" + uuid.uuid4().hex
    as_old(f"""
        c = Client()
        c.update_user(c.active_user.id, updated_password="{changed}", old_password="{password}")
        result = True
    """)
    manage("--tags", "remove", "-e", "username=it-gone", "-e", "confirm=yes")

    left = as_zenml_admin(stack, f"""
        from zenml.models import ComponentFilter, SecretFilter, StackFilter, UserFilter
        s = Client().zen_store
        result = {{
            "stacks": [x.name for x in s.list_stacks(StackFilter(user="{old_id}")).items],
            "components": [x.name for x in s.list_stack_components(ComponentFilter(user="{old_id}")).items],
            "public secrets": [x.name for x in s.list_secrets(SecretFilter(user="{old_id}")).items],
            "accounts named it-gone": [x.name for x in s.list_users(UserFilter(name="it-gone")).items],
            "the old account": [[x.name, x.active] for x in s.list_users(UserFilter(id="{old_id}")).items],
        }}
    """)
    assert left == {"stacks": [], "components": [], "public secrets": [], "accounts named it-gone": [],
                    "the old account": [[f"_removed.{old_id.replace('-', '')[:8]}.it-gone", False]]}
    with pytest.raises(RuntimeError, match="AuthorizationException|Authentication|credentials|401"):
        as_old("result = Client().active_user.name", changed)

    new = own_user("it-gone")
    seen = zenml_as(new["ZENML_STORE_URL"], "it-gone", new["ZENML_STORE_PASSWORD"], """
        c = Client()
        result = [str(c.active_user.id), sorted(s.name for s in c.list_secrets(size=100).items)]
    """)
    assert seen[0] != old_id
    assert "notes" not in seen[1] and "it-gone-public" not in seen[1]


def test_removing_a_half_made_user_cleans_up(stack):
    folder = REPO / "credentials" / "users" / "it-half"
    folder.mkdir(parents=True, mode=0o700)
    (folder / "mlflow_password").write_text(uuid.uuid4().hex)
    result = manage("--tags", "add", "-e", "username=it-half", check=False)
    assert result.returncode != 0 and "An earlier add failed half-way for: it-half" in " ".join(result.stdout.split())
    manage("--tags", "remove", "-e", "username=it-half", "-e", "confirm=yes")
    assert not folder.exists()
    assert manage("--tags", "remove", "-e", "username=it-half", "-e", "confirm=yes", check=False).returncode != 0


def zenml_config_folders():
    """The folders zenml_users makes for the ZenML client's configuration (it holds each login's password)."""
    import glob
    import os
    import tempfile
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "zenml-users-*"))
               + glob.glob(os.path.expanduser("~/.ansible/tmp/**/zenml-users-*"), recursive=True))


def files_holding(secret):
    """The files under the play user's Ansible folders (~/.ansible*: module payloads, async results) that hold
    the secret."""
    import glob
    import os
    found = []
    for top in glob.glob(os.path.expanduser("~/.ansible*")):
        for folder, _dirs, names in os.walk(top):
            for name in names:
                path = os.path.join(folder, name)
                try:
                    if os.path.getsize(path) < 10_000_000:
                        with open(path, "rb") as file:
                            if secret.encode() in file.read():
                                found.append(path)
                except OSError:  # gone meanwhile
                    pass
    return found


def test_adding_and_removing_leave_no_login_or_api_key_behind(users, stack):
    """The ZenML client's configuration (the admin's login) is deleted, and the new CI API key is in the user's
    files only, in no module result or payload the plays left (positive control: the key is in the user's file)."""
    before = zenml_config_folders()
    manage("--tags", "add", "-e", "username=it-tmp1", "-e", "role=developer")
    try:
        key = user_env("it-tmp1")["ZENML_STORE_API_KEY"]
        assert key and key in (REPO / "credentials" / "it-tmp1.env").read_text()
        assert files_holding(key) == []
    finally:
        manage("--tags", "remove", "-e", "username=it-tmp1", "-e", "confirm=yes")
    assert zenml_config_folders() - before == set()
