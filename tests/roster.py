"""The e2e suite's course: who is on it, and the helpers that add, read and list users (fixtures in
tests/e2e/conftest.py)."""
import contextlib

import pymysql

from mlops_stack.stackenv import ansible_playbook, load_stack, user_env, write_roster

STUDENT_A, STUDENT_B, TEACHER = "it-ana", "it-ben", "it-tea"
# Developers of their own for the tests that remove one, so the roster stays whole for every other test.
READDED, ARCHIVED = "it-readd", "it-arch"
# The task of run_server.yml and `manage_users.yml --tags refresh` that moves the users' ZenML stacks to the stack's
# addresses, and its status in the play's output (format with "changed", "skipping"...).
ZENML_TASK = r"Point the users' ZenML components at the stack's addresses\] \*+\n{}:"


def read_env(name):
    return {k: v.replace("localhost", "127.0.0.1") for k, v in user_env(name).items()}


def manage(*args, check=True):
    return ansible_playbook("playbooks/manage_users.yml", *args, check=check)


@contextlib.contextmanager
def course(path, names):
    """Students (developers) of names, added with a roster at path for the block and removed after: {name: env}."""
    roster = write_roster(path, names)
    manage("--tags", "add", "-e", f"roster={roster}")
    try:
        yield {name: user_env(name) for name in names}
    finally:
        manage("--tags", "remove", "-e", f"roster={roster}", "-e", "confirm=yes", check=False)


def root_sql(stack, database=None):
    """A connection to the stack's database as root."""
    return pymysql.connect(host=stack.db_host, port=stack.db_port, user="root",
                           password=stack.secret("database_root_password"), database=database)


def user_sql(env, database=None):
    """A user's connection with their file's account. The database is not published: this machine reaches it
    on the stack network, where a student's client would reach the port an administrator publishes."""
    stack = load_stack()
    return pymysql.connect(host=stack.db_host, port=stack.db_port, user=env["DATABASE_USER"],
                           password=env["DATABASE_PASSWORD"], database=database, autocommit=True)


def user_rows(stack):
    with root_sql(stack, "stack_management") as conn, conn.cursor() as cur:
        cur.execute("SELECT username, role FROM users ORDER BY username")
        return cur.fetchall()
