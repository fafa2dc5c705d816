"""Connection options and clients shared by the minio_* modules (minio-py: Minio, MinioAdmin)."""
import json
from urllib.parse import urlparse

try:
    from minio import Minio, MinioAdmin
    from minio.credentials import StaticProvider
    HAS_MINIO = True
except ImportError:  # reported by minio_connect()
    HAS_MINIO = False

MINIO_CONNECTION_ARGS = dict(
    minio_url=dict(type="str", required=True),
    minio_access_key=dict(type="str", required=True, no_log=True),
    minio_secret_key=dict(type="str", required=True, no_log=True),
)


def minio_connect(module):
    """Return (Minio, MinioAdmin) clients for the module's connection options."""
    if not HAS_MINIO:
        module.fail_json(msg="the Python library 'minio' is required on the host running this module")
    url = urlparse(module.params["minio_url"])
    if url.scheme not in ("http", "https") or not url.netloc:
        module.fail_json(msg=f"minio_url must look like http://host:9000, got {module.params['minio_url']!r}")
    access, secret = module.params["minio_access_key"], module.params["minio_secret_key"]
    secure = url.scheme == "https"
    client = Minio(url.netloc, access_key=access, secret_key=secret, secure=secure)
    admin = MinioAdmin(endpoint=url.netloc, credentials=StaticProvider(access, secret), secure=secure)
    return client, admin


def admin_json(text):
    """MinioAdmin answers JSON text; an empty answer is an empty dict."""
    return json.loads(text) if text and text.strip() else {}
