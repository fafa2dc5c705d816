class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host name or address of the MySQL-compatible server (MariaDB 10.11 or MySQL 8).
      - The modules run on the managed host, so the default reaches a server published there.
    type: str
    default: 127.0.0.1
  login_port:
    description: TCP port of the server.
    type: int
    default: 3306
  login_user:
    description: An account allowed to create schemas and accounts and to grant privileges, usually C(root).
    type: str
    default: root
  login_password:
    description: Password of that account.
    type: str
requirements:
  - pymysql (Python library) on the host that runs the module
"""
