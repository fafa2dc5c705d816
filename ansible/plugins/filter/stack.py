"""Filters over the stack's registry (roles/stack/defaults/main/services.yml) and its settings."""
import base64
import difflib
import hashlib
import hmac
import ipaddress
import json

from ansible.errors import AnsibleFilterError


def stack_proxy_ports(services, bind_address):
    """The proxy's published_ports: every public port of the registry, each on the proxy's port numbered as
    the service's own port on the stack network: ['<bind>:<public>:<internal>', ...]."""
    return [f"{bind_address}:{port['public']}:{port['internal']}" for port in _public_ports(services)]


def stack_service_ports(services):
    """Every public port of the registry: [{'service', 'container', 'port'}, ...]."""
    return [{"service": name, "container": service["container"], "port": port["public"]}
            for name, service in services.items() for port in service.get("ports", []) if "public" in port]


def stack_database_host(subnets):
    """The host part of a database account that the stack network may log in from: its IPv4 subnet as MariaDB and
    MySQL write it, address/netmask ('172.18.0.0/16' -> '172.18.0.0/255.255.0.0')."""
    networks = [ipaddress.ip_network(subnet) for subnet in subnets]
    ipv4 = [network for network in networks if network.version == 4]
    if not ipv4:
        raise AnsibleFilterError(f"the stack network has no IPv4 subnet (has {', '.join(subnets) or 'none'})")
    return ipv4[0].with_netmask


def stack_is_address(host):
    """Whether a host (stack_public_host) is an IP address (v4 or v6) rather than a name: a certificate names it as
    IP:, and ACME cannot get one for it."""
    try:
        ipaddress.ip_address(str(host))
    except ValueError:
        return False
    return True


def _public_ports(services):
    return [port for service in services.values() for port in service.get("ports", []) if "public" in port]


def stack_unknown_settings(given, known, where="stack.yml"):
    """One line per key of `given` that no role knows, naming the closest known key; [] when all are known."""
    known = sorted(set(known))
    lines = []
    for key in given:
        if key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        lines.append(f"{where}: unknown setting {key}{hint}")
    return lines


def stack_setting_keys(patterns):
    """The top-level keys of the YAML files matching the glob patterns (the roles' defaults files)."""
    import glob

    import yaml
    keys = []
    for path in sorted(name for pattern in patterns for name in glob.glob(pattern)):
        with open(path, encoding="utf-8") as stream:
            data = yaml.safe_load(stream) or {}
        if not isinstance(data, dict):
            raise AnsibleFilterError(f"{path} is not a mapping of settings")
        keys.extend(data)
    return keys


def stack_backup_folders(services):
    """The folders a backup copies as they are (each service's backup_paths): container, path, and the file in the
    backup that holds them."""
    return [{"container": service["container"], "path": path, "file": f"files/{service['role']}{path.replace('/', '_')}.tar"}
            for service in services.values() for path in service.get("backup_paths", [])]


def stack_ready_answers(results):
    """The answers to the readiness requests (status.yml's uri loop over the registry's `ready`): [service, path,
    HTTP status (-1: no answer), error], for stack_status."""
    return [[result["item"][0]["key"], result["item"][1]["path"], result.get("status", -1), result.get("msg", "")]
            for result in results]


def stack_status(services, df_text, memory_text, backups, schemas, probes, settings):
    """The report of playbooks/status.yml: each service with its container's memory and its readiness, each disk (the
    volumes and images, the backups) with how full it is, the database's size, the backups (how many, the newest and
    its age) and the warnings (a service down or not ready, a disk fuller than disk_warn_percent, with backup_schedule
    set a newest backup older than backup_max_age_hours). probes: the readiness requests, [service, path, HTTP
    status (-1: no answer), error]; a service is ready when each of its answered 200 (None: it has none)."""
    from datetime import datetime, timezone
    memory = dict(line.split(" ", 1) for line in memory_text.splitlines() if " " in line)
    failed = {}
    for service, path, status, error in probes:
        if status != 200:
            failed.setdefault(service, f"{path} " + (f"answered {status}" if status != -1 else f"did not answer ({error})"))
    probed = {probe[0] for probe in probes}
    rows = [dict(row, memory=memory.get(row["container"], "").split(" / ")[0],
                 ready=row["service"] not in failed if row["service"] in probed else None,
                 not_ready=failed.get(row["service"], "")) for row in services]
    disks = [{"path": path, "bytes": int(size), "free": int(free), "used_percent": int(used.rstrip("%"))}
             for path, size, free, used in (line.split() for line in df_text.splitlines()[1:])]
    now = datetime.now(timezone.utc)
    newest = max(backups, default=None)
    age = None
    if newest:
        taken = datetime.strptime(newest.rsplit("/", 1)[-1], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        age = round((now - taken).total_seconds() / 3600, 1)
    warnings = [f"{row['service']} is {row['state']}, health {row['health']}" for row in rows
                if row["needed"] and (row["state"] != "running" or row["health"] not in ("healthy", "none"))]
    warnings += [f"{row['service']} is not ready: {row['not_ready']}" for row in rows
                 if row["ready"] is False and row["state"] == "running"]
    warnings += [f"disk of {disk['path']} is {disk['used_percent']}% full" for disk in disks
                 if disk["used_percent"] > settings["disk_warn_percent"]]
    if settings["backup_schedule"] and (age is None or age > settings["backup_max_age_hours"]):
        warnings.append(f"backups are scheduled ({settings['backup_schedule']}) but the newest is "
                        + (f"{age} hours old" if newest else "missing") + " (see .mlops/logs/scheduled-backups.log)")
    return {"services": rows, "disks": disks,
            "database_bytes": sum(int(row["bytes"] or 0) for row in schemas),
            "backups": {"dir": settings["backup_dir"], "count": len(backups), "newest": newest, "age_hours": age},
            "warnings": warnings}


# When the object store's metrics token expires (2100-01-01): a fixed date, so the same password gives the same token.
METRICS_TOKEN_EXPIRY = 4102444800


def stack_metrics_token(secret_key, access_key):
    """The bearer token the object store's metrics endpoints take (what `mc admin prometheus generate` makes): a JWT
    signed with the account's secret key (HS512), issued to "prometheus" for its access key."""
    def part(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signed = ".".join(part(json.dumps(claims, separators=(",", ":")).encode()) for claims in (
        {"alg": "HS512", "typ": "JWT"}, {"exp": METRICS_TOKEN_EXPIRY, "iss": "prometheus", "sub": access_key}))
    return signed + "." + part(hmac.new(secret_key.encode(), signed.encode(), hashlib.sha512).digest())


class FilterModule:
    def filters(self):
        return {"stack_proxy_ports": stack_proxy_ports, "stack_database_host": stack_database_host,
                "stack_is_address": stack_is_address, "stack_service_ports": stack_service_ports,
                "stack_unknown_settings": stack_unknown_settings,
                "stack_setting_keys": stack_setting_keys, "stack_backup_folders": stack_backup_folders,
                "stack_status": stack_status, "stack_ready_answers": stack_ready_answers,
                "stack_metrics_token": stack_metrics_token}
