class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  minio_url:
    description:
      - URL of the MinIO-compatible server's S3 API, without a path.
      - The modules run on the managed host, so the default reaches a server published there.
    type: str
    default: http://127.0.0.1:9000
    aliases: [minio_endpoint]
  minio_access_key:
    description: Access key (user name) of an account allowed to administer the server, usually the root user.
    type: str
    required: true
  minio_secret_key:
    description: Secret key of that account.
    type: str
    required: true
  minio_validate_certs:
    description: Verify the server's TLS certificate (with C(https) URLs) against C(SSL_CERT_FILE) or certifi's bundle.
    type: bool
    default: true
requirements:
  - minio (Python library, 7.2 or later) on the host that runs the module
"""
