"""The database published for SQL clients elsewhere (database_publish). The client is a machine on the campus
network: a network namespace whose one route leads to this server, so the database sees the client's own address,
as it sees a campus machine's (connections from this server and its containers come from the stack network's
gateway instead). From there a student logs in with their file over TLS only, verifying the server's certificate
and host name with the stack's CA, and reads their own schema; root and the services' accounts do not log in from
there at all. Its certificate is issued again near its end, and served. Unpublished again, the port is closed and no
account needs TLS."""
import ipaddress
import json
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pymysql
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mlops_stack.doctor import NEW_FILE
from mlops_stack.stackenv import BIN, REPO, ansible_playbook, recap
from roster import STUDENT_A, STUDENT_B, manage, read_env, root_sql

CAMPUS = "mlops-campus"  # the namespace; its link is CAMPUS-h on this server and CAMPUS-c inside
CLIENT, GATEWAY = "10.99.0.2", "10.99.0.1"
PUBLISHED = f"{STUDENT_A}-pub"

CLIENT_CODE = """
import json, sys
import pymysql
results = {}
for name, login in json.loads(sys.argv[1]).items():
    try:
        connection = pymysql.connect(connect_timeout=10, **login)
        with connection.cursor() as cursor:
            cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
            tls = cursor.fetchone()[1]
            cursor.execute("SHOW DATABASES")
            results[name] = ["ok", tls, sorted(row[0] for row in cursor.fetchall())]
        connection.close()
    except Exception as error:
        results[name] = [type(error).__name__, " ".join(str(error).split())]
print(json.dumps(results))
"""


def ip(*args, netns=None):
    subprocess.run([*(["ip", "netns", "exec", netns] if netns else []), "ip", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def campus():
    subprocess.run(["ip", "netns", "del", CAMPUS], capture_output=True)  # left over from an interrupted run
    ip("netns", "add", CAMPUS)
    try:
        ip("link", "add", f"{CAMPUS}-h", "type", "veth", "peer", "name", f"{CAMPUS}-c", "netns", CAMPUS)
        ip("addr", "add", f"{GATEWAY}/24", "dev", f"{CAMPUS}-h")
        ip("link", "set", f"{CAMPUS}-h", "up")
        ip("addr", "add", f"{CLIENT}/24", "dev", f"{CAMPUS}-c", netns=CAMPUS)
        ip("link", "set", f"{CAMPUS}-c", "up", netns=CAMPUS)
        ip("route", "add", "default", "via", GATEWAY, netns=CAMPUS)
        yield
    finally:
        subprocess.run(["ip", "netns", "del", CAMPUS], capture_output=True)  # takes its link's both ends


def from_campus(logins):
    """Each login ({name: pymysql.connect's arguments}) tried from the campus machine: ["ok", TLS version,
    schemas seen] or [error type, message]."""
    done = subprocess.run(["ip", "netns", "exec", CAMPUS, sys.executable, "-c", CLIENT_CODE, json.dumps(logins)],
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def login(env, stack, user=None, password=None, tls=True):
    """pymysql's arguments for the account of a user's file, as a student's client takes them from it: its host,
    port and CA (STACK_CA_FILE, beside the file), the host name checked."""
    return {"host": env["DATABASE_HOST"], "port": int(env["DATABASE_PORT"]), "user": user or env["DATABASE_USER"],
            "password": password or env["DATABASE_PASSWORD"],
            "ssl": {"ca": str(stack.credentials / env["STACK_CA_FILE"]), "check_hostname": True} if tls else None}


def publish(value):
    return ansible_playbook("playbooks/run_server.yml", "-e", f"database_publish={value}")


@pytest.fixture(scope="module")
def published(stack, users, campus):
    run = publish("true")
    # A user added while the database is published (the setting given as stack.yml would give it to every play):
    # their account needs TLS from the start.
    manage("--tags", "add", "-e", f"username={PUBLISHED}", "-e", "role=developer", "-e", "database_publish=true")
    yield run
    manage("--tags", "remove", "-e", f"username={PUBLISHED}", "-e", "confirm=yes", check=False)
    if subprocess.run(["docker", "port", stack.container("database")], capture_output=True, text=True).stdout:
        publish("false")  # the last test unpublishes, unless it did not run


def tls_required(stack, names):
    with root_sql(stack) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT User, Host, ssl_type FROM mysql.user WHERE User IN %s", (names,))
        return {f"{user}@{host}": ssl_type for user, host, ssl_type in cursor.fetchall()}


def test_a_campus_machine_reaches_the_students_schema_over_tls_only(stack, users, published):
    a, added = users[STUDENT_A], read_env(PUBLISHED)
    found = from_campus({
        "student over TLS": login(a, stack),
        "student added while published, over TLS": login(added, stack),
        "student in plain text": login(a, stack, tls=False),
        "administrator over TLS": login(a, stack, user=stack.settings["stack_admin_username"],
                                        password=stack.secret("stack_admin_password")),
        "administrator in plain text": login(a, stack, user=stack.settings["stack_admin_username"],
                                             password=stack.secret("stack_admin_password"), tls=False),
    })
    kind, version, schemas = found.pop("student over TLS")
    assert kind == "ok" and version.startswith("TLSv1."), (kind, version)
    assert a["DATABASE_SCHEMA"] in schemas and users[STUDENT_B]["DATABASE_SCHEMA"] not in schemas, schemas
    kind, version, schemas = found.pop("student added while published, over TLS")
    assert kind == "ok" and version.startswith("TLSv1.") and added["DATABASE_SCHEMA"] in schemas, (kind, schemas)
    assert tls_required(stack, [PUBLISHED]) == {f"{PUBLISHED}@%": "ANY"}  # set by manage_users, not run_server
    assert found.pop("administrator over TLS")[0] == "ok"
    # MariaDB's own answer to an account that needs TLS, asked without it: access denied, for the campus address.
    for name, user in (("student in plain text", a["DATABASE_USER"]),
                       ("administrator in plain text", stack.settings["stack_admin_username"])):
        kind, message = found.pop(name)
        assert kind == "OperationalError" and f"(1045, \"Access denied for user '{user}'@'{CLIENT}'" in message, \
            (name, message)
    assert found == {}


def doctor_on_campus(path):
    done = subprocess.run(["ip", "netns", "exec", CAMPUS, str(BIN / "mlops"), "doctor", "--json", str(path)],
                          cwd=REPO, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    return done.returncode, {check["name"]: (check["ok"], check["detail"]) for check in json.loads(done.stdout)}


def test_doctor_on_a_campus_machine_signs_in_to_the_published_database(stack, users, published, tmp_path):
    """`mlops doctor` with the student's file checks every service from the campus machine, the database over TLS,
    and names a wrong database password."""
    rc, checks = doctor_on_campus(stack.credentials / f"{STUDENT_A}.env")
    assert rc == 0 and all(ok for ok, _ in checks.values()), checks
    assert checks["database"] == (True, f"signed in as {STUDENT_A}, schema {users[STUDENT_A]['DATABASE_SCHEMA']} is yours")
    shutil.copy(stack.credentials / "mlops-ca.crt", tmp_path / "mlops-ca.crt")
    wrong = tmp_path / f"{STUDENT_A}.env"
    wrong.write_text((stack.credentials / f"{STUDENT_A}.env").read_text().replace(
        f"DATABASE_PASSWORD={users[STUDENT_A]['DATABASE_PASSWORD']}", "DATABASE_PASSWORD=not-it"))
    rc, checks = doctor_on_campus(wrong)
    assert rc == 1 and checks["database"] == (False, "refuses DATABASE_USER and DATABASE_PASSWORD: " + NEW_FILE), checks


def test_root_and_the_services_log_in_from_the_stack_network_only(stack, users, published):
    a = users[STUDENT_A]
    found = from_campus({
        "root": login(a, stack, user="root", password=stack.secret("database_root_password")),
        "ZenML's account": login(a, stack, user="zenml", password=stack.secret("zenml_server_db_password")),
        "MLflow's account": login(a, stack, user="mlflow", password=stack.secret("mlflow_server_db_password")),
    })
    for name, user in (("root", "root"), ("ZenML's account", "zenml"), ("MLflow's account", "mlflow")):
        kind, message = found[name]
        # MariaDB's own refusal, naming the campus address: 1045, or 1698, as it answers an account unknown there like
        # one it picks among those it has (so that names cannot be probed), and some sign in by socket only.
        assert kind == "OperationalError" and message.startswith(("(1045, ", "(1698, ")), (name, message)
        assert f"Access denied for user '{user}'@'{CLIENT}'" in message, (name, message)
    # Those accounts are the stack network's (and root's the socket's), which this server's modules come from.
    network = subprocess.run(["docker", "network", "inspect", "--format", "{{(index .IPAM.Config 0).Subnet}}",
                              stack.settings["stack_network_name"]], capture_output=True, text=True, check=True)
    subnet = ipaddress.ip_network(network.stdout.strip()).with_netmask  # 172.18.0.0/255.255.0.0
    assert tls_required(stack, ["root", "zenml", "mlflow"]) == {
        "root@localhost": "", f"root@{subnet}": "", f"zenml@{subnet}": "", f"mlflow@{subnet}": ""}


def test_the_certificate_is_verified_against_the_stacks_ca(stack, users, published):
    """A client that trusts only the public CAs refuses the server: the certificate is the stack CA's."""
    a = users[STUDENT_A]
    public_cas = login(a, stack)
    public_cas["ssl"]["ca"] = "/etc/ssl/certs/ca-certificates.crt"
    kind, message = from_campus({"public CAs": public_cas})["public CAs"]
    assert kind in ("OperationalError", "SSLCertVerificationError") and "CERTIFICATE_VERIFY_FAILED" in message, \
        (kind, message)


def test_a_second_run_changes_nothing(published):
    assert recap(published.stdout)["changed"] > 0
    again = publish("true").stdout
    changed = [block.split("]")[0] for block in again.split("TASK [")[1:] if "\nchanged:" in block]
    assert recap(again)["changed"] == 0, changed


def served_until(stack):
    """When the certificate MariaDB serves now expires: its status on a TLS connection (e.g. 'Dec  2 20:10:00 2027
    GMT'), as root from this server, verified with the stack's CA (at the container's address, not the name)."""
    with pymysql.connect(host=stack.db_host, port=stack.db_port, user="root", password=stack.secret("database_root_password"),
                         ssl={"ca": stack.ca_file, "check_hostname": False}) as connection, connection.cursor() as cursor:
        cursor.execute("SHOW GLOBAL STATUS LIKE 'Ssl_server_not_after'")
        text = " ".join(cursor.fetchone()[1].split())
    return datetime.strptime(text, "%b %d %H:%M:%S %Y GMT").replace(tzinfo=timezone.utc)


def test_a_certificate_near_its_end_is_issued_again_and_served(stack, published):
    """The database's certificate (proxy_tls internal) is issued again when it would expire within 30 days, for a
    year, with the same key, and MariaDB serves the new one after the run (which restarts it)."""
    path = stack.credentials / "database_tls.crt"
    current = x509.load_pem_x509_certificate(path.read_bytes())
    assert served_until(stack) == current.not_valid_after_utc

    def ca_file(name):
        return subprocess.run(["docker", "exec", stack.container("proxy"), "cat", f"/data/caddy/pki/authorities/local/{name}"],
                              capture_output=True, check=True).stdout

    ca = x509.load_pem_x509_certificate(ca_file("root.crt"))
    now = datetime.now(timezone.utc).replace(microsecond=0)
    ending = (x509.CertificateBuilder().subject_name(current.subject).issuer_name(ca.subject)
              .public_key(current.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - timedelta(days=355)).not_valid_after(now + timedelta(days=10))
              .add_extension(current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False)
              .sign(serialization.load_pem_private_key(ca_file("root.key"), None), hashes.SHA256()))
    path.write_bytes(ending.public_bytes(serialization.Encoding.PEM))
    publish("true")
    renewed = x509.load_pem_x509_certificate(path.read_bytes())
    assert renewed.not_valid_after_utc > now + timedelta(days=360)
    assert renewed.public_key() == current.public_key() and renewed.subject == current.subject
    assert renewed.issuer == ca.subject
    assert served_until(stack) == renewed.not_valid_after_utc


def test_unpublished_the_port_closes_and_no_account_needs_tls(stack, users, published):
    run = publish("false")
    assert recap(run.stdout)["changed"] > 0
    kind, message = from_campus({"student": login(users[STUDENT_A], stack)})["student"]
    assert kind == "OperationalError" and "(2003, " in message and "Connection refused" in message, message
    names = [STUDENT_A, STUDENT_B, PUBLISHED, stack.settings["stack_admin_username"]]
    assert set(tls_required(stack, names).values()) == {""}
