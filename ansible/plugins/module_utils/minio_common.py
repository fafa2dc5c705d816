"""Connection options, clients and error messages shared by the minio_* modules (minio-py)."""
import json
import os
from urllib.parse import urlparse

from ansible.module_utils.stack_common import one_line

try:
    import certifi
    import urllib3
    from minio import Minio, MinioAdmin
    from minio.credentials import StaticProvider
    from minio.error import MinioAdminException, S3Error
    HAS_MINIO = True
except ImportError:  # reported by minio_connect()
    HAS_MINIO = False


def minio_argument_spec(**options):
    """The module's own options plus the connection options documented in the minio doc fragment."""
    return dict(
        minio_url=dict(type="str", default="http://127.0.0.1:9000", aliases=["minio_endpoint"]),
        minio_access_key=dict(type="str", required=True, no_log=False),
        minio_secret_key=dict(type="str", required=True, no_log=True),
        minio_validate_certs=dict(type="bool", default=True),
        **options)


def _http_client(validate_certs):
    """Short timeouts: a wrong address fails in seconds, not after minio-py's 5 minutes."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=10, read=60),
        cert_reqs="CERT_REQUIRED" if validate_certs else "CERT_NONE",
        ca_certs=(os.environ.get("SSL_CERT_FILE") or certifi.where()) if validate_certs else None,
        retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]))


def minio_connect(module, access_key=None, secret_key=None):
    """(Minio, MinioAdmin) clients for the connection options, or for other credentials if given."""
    if not HAS_MINIO:
        module.fail_json(msg="the Python library 'minio' is required on the host that runs this module")
    params = module.params
    url = urlparse(params["minio_url"])
    if url.scheme not in ("http", "https") or not url.netloc or url.path not in ("", "/"):
        module.fail_json(msg=f"minio_url must look like http://host:9000, got {params['minio_url']!r}")
    access_key = access_key or params["minio_access_key"]
    secret_key = secret_key or params["minio_secret_key"]
    secure = url.scheme == "https"
    http = _http_client(params["minio_validate_certs"])
    client = Minio(url.netloc, access_key=access_key, secret_key=secret_key, secure=secure,
                   http_client=http)
    admin = MinioAdmin(endpoint=url.netloc, credentials=StaticProvider(access_key, secret_key),
                       secure=secure, http_client=http)
    return client, admin


def admin_json(text):
    """MinioAdmin answers JSON text; an empty answer is an empty dict."""
    return json.loads(text) if text and text.strip() else {}


def admin_error_code(error):
    """The service's error code (e.g. XMinioAdminNoSuchUser) of a MinioAdminException, else ''."""
    try:
        return json.loads(getattr(error, "_body", "") or "{}").get("Code", "")
    except ValueError:
        return ""


def error_message(error):
    """One line a person can act on, from whatever the client library raised."""
    if HAS_MINIO and isinstance(error, MinioAdminException):
        try:
            body = json.loads(error._body)
            return one_line(f"{body.get('Code', 'error')}: {body.get('Message', '')}")
        except ValueError:
            return f"HTTP {error._code}: {one_line(error._body or '', 200)}"
    if HAS_MINIO and isinstance(error, S3Error):
        return one_line(f"{error.code}: {error.message}")
    if HAS_MINIO and isinstance(error, urllib3.exceptions.HTTPError):
        return f"cannot reach the server: {one_line(getattr(error, 'reason', None) or error)}"
    return one_line(error)
