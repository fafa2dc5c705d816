"""Filters over the stack's registry (roles/stack/defaults/main/services.yml) and its settings."""
import difflib

from ansible.errors import AnsibleFilterError


def stack_proxy_ports(services, bind_address):
    """The proxy's published_ports: every public port of the registry, each on the proxy's port numbered as
    the service's own port on the stack network: ['<bind>:<public>:<internal>', ...]."""
    return [f"{bind_address}:{port['public']}:{port['internal']}" for port in _public_ports(services)]


def stack_service_ports(services):
    """Every public port of the registry: [{'service', 'container', 'port'}, ...]."""
    return [{"service": name, "container": service["container"], "port": port["public"]}
            for name, service in services.items() for port in service.get("ports", []) if "public" in port]


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


class FilterModule:
    def filters(self):
        return {"stack_proxy_ports": stack_proxy_ports, "stack_service_ports": stack_service_ports, "stack_unknown_settings": stack_unknown_settings,
                "stack_setting_keys": stack_setting_keys, "stack_backup_folders": stack_backup_folders}
