"""Connection options, connections and error messages shared by the database_* modules (PyMySQL)."""
from ansible.module_utils.stack_common import one_line

try:
    import pymysql
    HAS_PYMYSQL = True
except ImportError:  # reported by database_connect()
    HAS_PYMYSQL = False

ACCESS_DENIED = 1045  # ER_ACCESS_DENIED_ERROR: wrong user name or password


def database_argument_spec(**options):
    """The module's own options plus the connection options documented in the database doc fragment."""
    return dict(
        login_host=dict(type="str", default="127.0.0.1"),
        login_port=dict(type="int", default=3306),
        login_user=dict(type="str", default="root"),
        login_password=dict(type="str", no_log=True),
        **options)


def database_connect(module, user=None, password=None, ca_cert=None):
    """An autocommit connection with the connection options, or as another account if given; over TLS verified
    with ca_cert if given (not the host name: modules may reach the server at an internal address)."""
    if not HAS_PYMYSQL:
        module.fail_json(msg="the Python library 'pymysql' is required on the host that runs this module")
    params = module.params
    return pymysql.connect(
        host=params["login_host"], port=params["login_port"],
        user=user or params["login_user"],
        password=(password if user else params["login_password"]) or "",
        charset="utf8mb4", autocommit=True, connect_timeout=10,
        ssl={"ca": ca_cert, "check_hostname": False} if ca_cert else None,
        cursorclass=pymysql.cursors.DictCursor)


def password_works(module, user, password, ca_cert=None):
    """Whether the server lets this account log in with this password (over TLS, with ca_cert)."""
    try:
        database_connect(module, user, password, ca_cert).close()
    except pymysql.err.OperationalError as error:
        if error.args[0] == ACCESS_DENIED:
            return False
        raise
    return True


def error_message(error):
    """One line a person can act on, from whatever PyMySQL raised."""
    if HAS_PYMYSQL and isinstance(error, pymysql.err.MySQLError) and len(error.args) == 2:
        return one_line(f"MySQL error {error.args[0]}: {error.args[1]}")
    return one_line(error)
