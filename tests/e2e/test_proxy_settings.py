"""The proxy's certificate and read buffer settings: each mistake stops the play in preflight with one line and
nothing changed; a good university certificate passes; the ACME configuration, which cannot obtain a certificate
here, is rendered and validated by Caddy itself."""
import datetime
import re
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mlops_stack.stackenv import REPO, ansible_playbook, docker, recap


def words(output):
    return " ".join(output.split())


def preflight(*extra):
    return ansible_playbook("playbooks/run_server.yml", "--check", "--tags", "preflight", *extra, check=False)


def write_pair(folder, host, name="server"):
    """A CA, and a certificate for host signed by it; returns the paths (cert, key, ca)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "University test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False).sign(ca_key, hashes.SHA256()))
    paths = folder / f"{name}.crt", folder / f"{name}.key", folder / f"{name}-ca.crt"
    paths[0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return paths


def files_mode(cert, key, ca, host="mlops.example.org"):
    return ["-e", f"proxy_tls=files proxy_tls_cert_file={cert} proxy_tls_key_file={key} proxy_tls_ca_file={ca} "
            f"stack_public_host={host}"]


def test_a_good_university_certificate_passes_preflight(stack, tmp_path):
    run = preflight(*files_mode(*write_pair(tmp_path, "mlops.example.org")))
    assert run.returncode == 0, run.stdout[-3000:]


@pytest.mark.parametrize("mistake, message", [
    ("unknown mode", "stack.yml: proxy_tls must be internal, files or acme (is selfsigned)"),
    ("missing key", "stack.yml: proxy_tls files needs proxy_tls_key_file, a file on the controller"),
    ("key of another certificate", "is not the key of"),
    ("certificate of another host", "does not name mlops.example.org (stack_public_host)"),
    ("acme without a DNS name", "stack.yml: proxy_tls acme needs stack_public_host to be the server's public DNS name"),
    ("database published with acme",
     "stack.yml: database_publish needs proxy_tls internal or files: MariaDB cannot renew an ACME certificate"),
    ("database published, maybe", "argument 'database_publish' is of type str and we were unable to convert to bool"),
    ("read buffer of no size", "stack.yml: proxy_bulk_read_buffer must be a size in KiB or MiB (is lots)"),
    ("buffers past the proxy's memory",
     "proxy_bulk_connections above 0 (is 97), and that many buffers at most half of proxy_memory (is 192m)"),
])
def test_a_proxy_setting_mistake_stops_the_play_in_preflight(stack, tmp_path, mistake, message):
    cert, key, ca = write_pair(tmp_path, "mlops.example.org")
    _, other_key, _ = write_pair(tmp_path, "mlops.example.org", name="other")
    wrong_host, wrong_host_key, _ = write_pair(tmp_path, "elsewhere.example.org", name="elsewhere")
    extra = {
        "unknown mode": ["-e", "proxy_tls=selfsigned"],
        "missing key": files_mode(cert, tmp_path / "nowhere.key", ca),
        "key of another certificate": files_mode(cert, other_key, ca),
        "certificate of another host": files_mode(wrong_host, wrong_host_key, ca),
        "acme without a DNS name": ["-e", "proxy_tls=acme proxy_acme_email=admin@example.org stack_public_host=192.0.2.10"],
        "database published with acme": ["-e", "proxy_tls=acme proxy_acme_email=admin@example.org "
                                               "stack_public_host=mlops.example.org database_publish=true"],
        "database published, maybe": ["-e", "database_publish=maybe"],
        "read buffer of no size": ["-e", "proxy_bulk_read_buffer=lots"],
        "buffers past the proxy's memory": ["-e", "proxy_bulk_connections=97"],
    }[mistake]
    before = docker("inspect", "--format", "{{.Id}}", stack.container("proxy"))
    run = ansible_playbook("playbooks/run_server.yml", *extra, check=False)
    assert run.returncode != 0
    assert message in words(run.stdout), run.stdout[-3000:]
    assert recap(run.stdout)["changed"] == 0
    assert "TASK [database" not in run.stdout  # stopped in preflight, before any service
    assert docker("inspect", "--format", "{{.Id}}", stack.container("proxy")) == before


RENDER = """
- name: Render the proxy's configuration
  hosts: localhost
  gather_facts: false
  vars_files: [{repo}/stack.yml]
  roles: [{{role: stack}}]
  tasks:
    - name: Render Caddyfile.j2
      ansible.builtin.template:
        src: {repo}/roles/proxy/templates/Caddyfile.j2
        dest: {dest}/Caddyfile
        mode: "0644"
"""


@pytest.mark.parametrize("mode", ["acme", "internal"])
def test_the_proxy_configuration_is_valid_caddy(stack, tmp_path, mode):
    """The acme configuration cannot get a certificate here: Caddy itself validates what the play renders
    (internal, which the running stack uses, is the positive control)."""
    play = tmp_path / "render.yml"
    play.write_text(RENDER.format(repo=REPO, dest=tmp_path))
    ansible_playbook(str(play), "-e", f"proxy_tls={mode} proxy_acme_email=admin@example.org "
                     "stack_public_host=mlops.example.org stack_credentials_dir=" + str(tmp_path))
    tmp_path.chmod(0o755)  # the proxy runs as its own user
    config = (tmp_path / "Caddyfile").read_text()
    assert ("email admin@example.org" in config) == (mode == "acme")
    assert ("tls internal" in config) == (mode == "internal")
    assert "keepalive 4s" in config  # below the services' own idle timeout
    # The S3 API's answers (objects) are read in large pieces on bounded connections; the others' as Caddy reads them.
    bulk = re.findall(r"reverse_proxy (\S+) \{[^}]*read_buffer 1MiB\s+max_conns_per_host 64\s", config)
    assert bulk == [f"{stack.container('object_store')}:9000"]
    done = subprocess.run(["docker", "run", "--rm", "-v", f"{tmp_path}:/etc/caddy:ro", stack.image("proxy"), "caddy",
                           "validate", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Valid configuration" in done.stdout + done.stderr, done.stderr[-2000:]
