class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  mlflow_url:
    description: URL of the MLflow tracking server running with C(--app-name basic-auth).
    type: str
    required: true
  mlflow_username:
    description: An MLflow admin account.
    type: str
    required: true
  mlflow_password:
    description: Password of that account.
    type: str
    required: true
requirements:
  - requests (Python library) on the host that runs the module
"""
