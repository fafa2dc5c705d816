"""The proxy is the stack's one entry point: only its ports are published, they speak TLS only, with a
certificate that clients verify with the stack's CA; job containers reach the services through it and
nothing else of the stack.
"""
import concurrent.futures
import os
import socket
import ssl
import subprocess
import time
import urllib.parse

import certifi
import pytest
import requests

from mlops_stack.stackenv import docker, role_setting, user_s3


def public_ports(stack):
    return sorted(int(port["public"]) for service in stack.services.values()
                  for port in service.get("ports", []) if "public" in port)


def published(stack):
    """{container: [host ports]} of every container of the stack that publishes a port."""
    names = subprocess.run(["docker", "ps", "--format", "{{.Names}}", "--filter", f"name=^{stack.settings['stack_name']}-"],
                           capture_output=True, text=True, check=True).stdout.split()
    found = {}
    for name in names:
        ports = subprocess.run(["docker", "port", name], capture_output=True, text=True, check=True).stdout.split("\n")
        host_ports = sorted({int(line.rsplit(":", 1)[1]) for line in ports if ":" in line})
        if host_ports:
            found[name] = host_ports
    return found


def listening_ports():
    """TCP ports something listens on, on any address of this machine (ss -ltn)."""
    lines = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout.splitlines()
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in lines}


def test_only_the_proxy_publishes_ports_and_only_its_own(stack):
    assert published(stack) == {stack.container("proxy"): public_ports(stack)}
    listening = listening_ports()
    assert set(public_ports(stack)) <= listening
    # The services' own ports answer on the stack network only, not on this machine.
    for service in ("database", "object_store", "zenml", "mlflow"):
        for port in stack.services[service]["ports"]:
            if int(port["internal"]) not in public_ports(stack):
                assert int(port["internal"]) not in listening, f"{service} port {port['internal']} listens on the host"


@pytest.mark.parametrize("service", ["mlflow", "zenml", "object_store", "proxy"])
def test_public_ports_speak_tls_only(stack, service):
    url = urllib.parse.urlsplit(stack.url(service))
    port = url.port or 443
    # Positive control: over TLS, verified with the stack's CA, the service answers.
    assert requests.get(stack.url(service) + "/", timeout=30, verify=stack.ca_file).status_code < 500
    # Plain HTTP on the same port is refused: Caddy answers 400 and nothing is proxied.
    plain = requests.get(f"http://{url.hostname}:{port}/", timeout=30)
    assert plain.status_code == 400 and "HTTP request to an HTTPS server" in plain.text
    # A client that trusts the public CAs only, not the stack's, does not get a connection.
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        requests.get(stack.url(service) + "/", timeout=30, verify=certifi.where())


def test_the_certificate_names_the_public_host(stack):
    host = urllib.parse.urlsplit(stack.url("mlflow")).hostname
    context = ssl.create_default_context(cafile=stack.ca_file)
    with socket.create_connection((host, int(stack.settings["mlflow_server_port"])), timeout=30) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            names = [value for _, value in tls.getpeercert()["subjectAltName"]]
    assert host in names


def test_the_landing_page_lists_the_services_and_the_ca(stack):
    page = requests.get(stack.url("proxy") + "/", timeout=30, verify=stack.ca_file)
    assert page.status_code == 200
    for service in ("mlflow", "zenml"):
        assert f'href="{stack.url(service)}/"' in page.text
    assert f'href="{stack.services["object_store"]["console_url"]}/"' in page.text
    ca = requests.get(stack.url("proxy") + "/ca.crt", timeout=30, verify=stack.ca_file)
    with open(stack.ca_file, encoding="ascii") as handed_out:
        assert ca.text.strip() == handed_out.read().strip()


def run_on_jobs_network(stack, code):
    """Run Python code in a container of the job image on the jobs' network, as a CI job is; its output."""
    image = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                            f"reference={stack.settings['stack_name']}/job"],
                           capture_output=True, text=True, check=True).stdout.split()[0]
    done = subprocess.run(["docker", "run", "--rm", "--network", stack.settings["stack_jobs_network_name"],
                           "-v", f"{stack.ca_file}:/etc/mlops-stack/ca.crt:ro", image, "python", "-c", code],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


PROBE = """
import socket, ssl
def connect(host, port, tls=False):
    try:
        with socket.create_connection((host, port), timeout=5) as raw:
            if tls:
                context = ssl.create_default_context(cafile="/etc/mlops-stack/ca.crt")
                with context.wrap_socket(raw, server_hostname=host):
                    pass
        return "open"
    except socket.gaierror:
        return "no such name"
    except OSError as error:
        return type(error).__name__
"""


def test_a_job_reaches_the_proxy_and_nothing_else_of_the_stack(stack):
    public = urllib.parse.urlsplit(stack.url("mlflow"))
    targets = [("proxy", public.hostname, public.port, True)]
    for service in ("database", "object_store"):
        internal = int(stack.services[service]["ports"][0]["internal"])
        targets += [(f"{service} by name", stack.container(service), internal, False),
                    (f"{service} by address", stack.address(service), internal, False)]
    code = PROBE + "\n".join(f"print({label!r}, connect({host!r}, {port}, {tls}), sep='=')"
                             for label, host, port, tls in targets)
    answers = dict(line.split("=", 1) for line in run_on_jobs_network(stack, code).splitlines())
    assert answers["proxy"] == "open"  # positive control: over TLS, verified
    assert answers["database by name"] == answers["object_store by name"] == "no such name"
    # Docker isolates the two networks: packets to the services' addresses are dropped.
    assert answers["database by address"] in ("TimeoutError", "timeout", "ConnectionRefusedError"), answers
    assert answers["object_store by address"] in ("TimeoutError", "timeout", "ConnectionRefusedError"), answers


ATTACK = """
import requests
CA = "/etc/mlops-stack/ca.crt"
def mlflow(password):
    return requests.get(MLFLOW + "/api/2.0/mlflow/experiments/search", params={"max_results": 1},
                        auth=(USER, password), timeout=30, verify=CA).status_code
def zenml(password):
    return requests.post(ZENML + "/api/v1/login", data={"username": USER, "password": password},
                         timeout=30, verify=CA).status_code
"""


def attack(stack, user, lines):
    """Run lines of Python with ATTACK's helpers from a job container: another client than this machine."""
    code = (f"MLFLOW, ZENML, USER = {stack.url('mlflow')!r}, {stack.url('zenml')!r}, {user!r}\n" + ATTACK
            + "\n".join(lines))
    return [line.split() for line in run_on_jobs_network(stack, code).splitlines()]


def test_repeated_wrong_passwords_are_throttled_for_that_client_only(stack, users):
    name, env = next(iter(users.items()))
    limit = role_setting("mlflow_server", "mlflow_server_login_failures_per_minute")
    workers = role_setting("stack", "mlflow_server_workers")
    mlflow_answers, zenml_answers, after = attack(stack, name, [
        f"print(*[mlflow('wrong') for _ in range({3 * limit * workers})])",
        "print(*[zenml('wrong') for _ in range(8)])",
        f"print(mlflow({env['MLFLOW_TRACKING_PASSWORD']!r}), zenml({env['ZENML_STORE_PASSWORD']!r}))",
    ])
    # MLflow: each worker counts a client's failures; past the limit every answer is 429, never a sign-in.
    assert set(mlflow_answers) == {"401", "429"} and mlflow_answers.count("401") <= limit * workers, mlflow_answers
    assert mlflow_answers[-1] == "429"
    # ZenML's own limit: 5 failed logins a minute.
    assert zenml_answers[:5] == ["401"] * 5 and set(zenml_answers[5:]) == {"429"}, zenml_answers
    # The throttled client cannot try the right password either, for now ...
    assert after == ["429", "429"]
    # ... while another client (this machine) signs in at once.
    assert requests.get(f"{env['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/experiments/search", params={"max_results": 1},
                        auth=(name, env["MLFLOW_TRACKING_PASSWORD"]), timeout=30).status_code == 200
    assert requests.post(f"{env['ZENML_STORE_URL']}/api/v1/login", timeout=30,
                         data={"username": name, "password": env["ZENML_STORE_PASSWORD"]}).status_code == 200
    # The lock lifts by itself a minute after the last attempt, and leaves nothing behind for the tests after
    # this one (the jobs' client address is also the one this machine's plays come from, on the stack network).
    time.sleep(70)
    assert attack(stack, name, [f"print(mlflow({env['MLFLOW_TRACKING_PASSWORD']!r}), "
                                f"zenml({env['ZENML_STORE_PASSWORD']!r}))"]) == [["200", "200"]]


def test_a_burst_of_downloads_stays_within_the_proxys_memory(stack, users):
    """The proxy reads objects with a large buffer per connection to the object store (proxy_bulk_read_buffer), on a
    bounded number of them: more parallel downloads than that all succeed, and the proxy is neither killed for
    memory nor restarted (without the bound, these buffers alone would pass its limit, proxy_memory)."""
    name, env = next(iter(users.items()))
    s3 = user_s3(env)
    s3.put_object(Bucket=env["STACK_BUCKET"], Key="burst.bin", Body=os.urandom(16 * 2**20))
    url = s3.generate_presigned_url("get_object", Params={"Bucket": env["STACK_BUCKET"], "Key": "burst.bin"})
    before = docker("inspect", "--format", "{{.RestartCount}} {{.State.StartedAt}}", stack.container("proxy"))
    downloads = 3 * role_setting("stack", "proxy_bulk_connections")

    def download(_):
        # Slow clients (8 s each), so that the downloads overlap.
        return subprocess.run(["curl", "-sS", "--http1.1", "--limit-rate", "2M", "--cacert", stack.ca_file, "-o", "/dev/null",
                               "-w", "%{http_code} %{size_download}", url], capture_output=True, text=True).stdout

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=downloads) as pool:
            answers = list(pool.map(download, range(downloads)))
    finally:
        s3.delete_object(Bucket=env["STACK_BUCKET"], Key="burst.bin")
    assert answers == [f"200 {16 * 2**20}"] * downloads
    after = docker("inspect", "--format", "{{.RestartCount}} {{.State.StartedAt}} {{.State.OOMKilled}}",
                   stack.container("proxy"))
    assert after == f"{before} false"
