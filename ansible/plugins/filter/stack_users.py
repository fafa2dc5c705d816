"""Validate the users given to manage_users.yml: one username/role pair or a course roster (CSV)."""
import csv
import io
import re

from ansible.errors import AnsibleFilterError

ROLES = ("developer", "teacher", "administrator")
USERNAME = re.compile(r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$")
USERNAME_RULE = "3 to 20 characters: a-z, 0-9 and '-', starting with a letter, not ending with '-'"


def check_user(username, role, reserved, where="") -> dict:
    """One user as {'username', 'role'}, or AnsibleFilterError with a one-line reason."""
    username = (username or "").strip()
    role = (role or "").strip()
    if not USERNAME.match(username) or "--" in username:
        raise AnsibleFilterError(f"{where}{username!r} is not a valid username ({USERNAME_RULE})")
    if any(username == name or (name.endswith("*") and username.startswith(name[:-1])) for name in reserved):
        raise AnsibleFilterError(f"{where}{username!r} is reserved by the stack")
    if role not in ROLES:
        raise AnsibleFilterError(f"{where}unknown role {role!r} for {username!r} (one of: {', '.join(ROLES)})")
    return {"username": username, "role": role}


def parse_roster(text, reserved, name="roster") -> list:
    """Users of a CSV roster with the columns username and role; the whole roster or an error. A spreadsheet's
    byte-order mark and Windows line endings read the same."""
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if header[:2] != ["username", "role"]:
        raise AnsibleFilterError(f"{name}: the first line must be the header 'username,role'")
    users, seen = [], set()
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise AnsibleFilterError(f"{name} line {number}: expected 2 columns (username,role), got {len(row)}")
        user = check_user(row[0], row[1], reserved, where=f"{name} line {number}: ")
        if user["username"] in seen:
            raise AnsibleFilterError(f"{name} line {number}: {user['username']!r} appears twice")
        seen.add(user["username"])
        users.append(user)
    if not users:
        raise AnsibleFilterError(f"{name}: no users in the roster")
    return users


def stack_users(request, reserved):
    """Filter: {'username', 'role', 'roster_text', 'roster_name'} -> list of checked users."""
    if request.get("roster_text") is not None:
        if request.get("username"):
            raise AnsibleFilterError("give either username (with role) or roster, not both")
        return parse_roster(request["roster_text"], reserved, request.get("roster_name") or "roster")
    if request.get("username") is None:
        raise AnsibleFilterError("no user given: pass -e username=NAME (and role=ROLE) or -e roster=FILE.csv")
    return [check_user(str(request["username"]), str(request.get("role") or "developer"), reserved)]


def stack_users_plan(user, credentials_dir):
    """Every name and path derived from one checked user, computed here only: the schema, bucket, ZenML stack
    and CI service account, the folder of their passwords and the credentials file to hand over."""
    name = user["username"]
    return {**user, "schema": "user_" + name.replace("-", "_"), "bucket": name, "stack": name,
            "service_account": f"{name}-ci", "folder": f"{credentials_dir}/users/{name}",
            "env_file": f"{credentials_dir}/{name}.env"}


def stack_users_usage(users, sql, buckets, mlflow_bucket, quota):
    """Per recorded user, what they hold: their bucket (objects, bytes, against the quota), their schema's bytes,
    their MLflow runs and artifact bytes (of their experiments, named <user>.*: MLflow records the client's
    local user name with a run, not the one that signed in), their ZenML pipeline runs (as themselves or as their
    CI service account), and their last activity (the newest run of either). `sql` is the status play's
    query_result: schema sizes, MLflow runs per experiment, ZenML runs per user, experiments."""
    schemas = {row["name"]: int(row["bytes"] or 0) for row in sql[0]}
    mlflow, zenml = {str(row["experiment_id"]): row for row in sql[1]}, {row["username"]: row for row in sql[2]}
    artifacts = buckets.get(mlflow_bucket, {}).get("prefixes", {})
    rows = []
    for user in users:
        plan = stack_users_plan(user, "")
        name = plan["username"]
        owned = [str(row["experiment_id"]) for row in sql[3] if row["name"].startswith(name + ".")]
        runs = [mlflow[experiment] for experiment in owned if experiment in mlflow]
        zenml_runs = [row for row in (zenml.get(name), zenml.get(plan["service_account"])) if row]
        lasts = [row["last"] for row in runs + zenml_runs if row["last"]]
        bucket = buckets.get(plan["bucket"], {"objects": 0, "bytes": 0})
        rows.append({"username": name, "role": user["role"],
                     "bucket_objects": bucket["objects"], "bucket_bytes": bucket["bytes"], "bucket_quota": quota,
                     "schema_bytes": schemas.get(plan["schema"], 0),
                     "mlflow_runs": sum(int(row["runs"]) for row in runs),
                     "mlflow_artifact_bytes": sum(artifacts.get(experiment, 0) for experiment in owned),
                     "zenml_runs": sum(int(row["runs"]) for row in zenml_runs),
                     "last_activity": max(lasts) if lasts else None})
    return rows


def stack_users_held(rows, looks):
    """Each recorded user's row with `services`: per service looked in (look.yml's results, by service), whether it
    holds something under the user's name (true), nothing (false), or could not be asked (null)."""
    def held(look, name):
        if "taken" in look:
            return name in look["taken"]
        return None if look.get("failed") else False
    return [{**row, "services": {service: held(look, row["username"]) for service, look in looks.items()}} for row in rows]


def stack_users_accounts(user, secrets, settings):
    """What the database_users, minio_bucket, minio_user and mlflow_user modules need for one planned user."""
    name, role = user["username"], user["role"]
    mine = secrets[name]
    return {
        "database": {"name": name, "password": mine["database"], "schema": user["schema"],
                     "admin": role == "administrator", "max_connections": settings["db_max_connections"]},
        "bucket": {"name": user["bucket"], "quota": settings["bucket_quota"], "expiry_days": settings["bucket_expiry_days"]},
        "object_store": {"access_key": name, "secret_key": mine["object_store"],
                         "policies": settings["object_store_policies"][role]},
        "mlflow": {"username": name, "password": mine["mlflow"], "admin": role == "administrator",
                   "roles": ["teachers"] if role == "teacher" else []},
    }


def stack_users_zenml(user, secrets, urls, names_only=False):
    """What the zenml_users module needs for one planned user: private secrets, the user's own stack, and the
    CI service account whose API key CI runs use (the key's value from an earlier run, if any).

    names_only: the secrets without values, for a look at which names are taken (Ansible hides every value of
    a no_log option wherever it appears, and a secret holds the user name, so the answer would hide it too)."""
    name = user["username"]
    mine = secrets[name]
    if names_only:
        planned = stack_users_zenml(user, secrets, urls)
        return dict(planned, secrets={secret: {} for secret in planned["secrets"]})

    def ref(secret, key):  # ZenML resolves {{secret.key}} from the user's private secret at run time
        return "{{" + f"{name}-{secret}.{key}" + "}}"

    return {
        "name": name, "password": mine["zenml"], "admin": user["role"] == "administrator", "stack": user["stack"],
        "service_account": user["service_account"], "api_key": mine.get("zenml_api_key", ""),
        "secrets": {
            f"{name}-object-store": {"aws_access_key_id": name, "aws_secret_access_key": mine["object_store"]},
            f"{name}-mlflow": {"username": name, "password": mine["mlflow"]},
        },
        "components": {
            f"{name}-artifacts": {"type": "artifact_store", "flavor": "s3", "configuration": {
                "path": f"s3://{user['bucket']}", "key": ref("object-store", "aws_access_key_id"),
                "secret": ref("object-store", "aws_secret_access_key"),
                "client_kwargs": {"endpoint_url": urls["object_store"], "region_name": "us-east-1"}}},
            f"{name}-mlflow": {"type": "experiment_tracker", "flavor": "mlflow", "configuration": {
                "tracking_uri": urls["mlflow"], "tracking_username": ref("mlflow", "username"),
                "tracking_password": ref("mlflow", "password")}},
            f"{name}-local": {"type": "orchestrator", "flavor": "local", "configuration": {}},
        },
    }


class FilterModule:
    def filters(self):
        return {"stack_users": stack_users, "stack_users_plan": stack_users_plan, "stack_users_accounts": stack_users_accounts,
                "stack_users_zenml": stack_users_zenml, "stack_users_usage": stack_users_usage,
                "stack_users_held": stack_users_held}
