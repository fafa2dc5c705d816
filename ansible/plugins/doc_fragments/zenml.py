class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  zenml_url:
    description: URL of the ZenML server.
    type: str
    required: true
  zenml_username:
    description: A ZenML admin account.
    type: str
    required: true
  zenml_password:
    description: Password of that account.
    type: str
    required: true
requirements:
  - zenml (the version of the server) on the host that runs the module
"""
