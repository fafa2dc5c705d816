class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  minio_url:
    description: URL of the MinIO-compatible server's S3 API, e.g. C(http://127.0.0.1:9000).
    type: str
    required: true
  minio_access_key:
    description: Access key (user name) of an account allowed to administer the server.
    type: str
    required: true
  minio_secret_key:
    description: Secret key of that account.
    type: str
    required: true
requirements:
  - minio (Python library) on the host that runs the module
"""
