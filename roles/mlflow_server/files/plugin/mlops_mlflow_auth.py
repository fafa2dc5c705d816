"""The stack's MLflow server app (`mlflow server --app-name mlops-auth`): basic-auth plus two rules it lacks.

1. Names belong to their owner. A user who is not an admin may create or rename an experiment or a
   registered model (prompts included) only to a name of their own: their username, or their username,
   a dot and anything (`alice.mnist`). Usernames have no dots, so no user's names are another's prefix,
   and nobody can claim the names of a student who does not exist yet.
2. Storage locations resolve to something the caller may read. MLflow reads a model version's source
   with the server's own object-store account (model-versions/get-artifact), and checks `runs:`,
   `models:` and run-anchored sources only. Here every source must be a `runs:` or `models:` URI the
   caller may read, or an artifact path (`mlflow-artifacts:`, the proxy's http(s) URL, or a raw URI in
   the server's artifact destination) inside an experiment the caller may read. An experiment's
   artifact location is the server's to choose: users may not set one.

3. Failed sign-ins are throttled per client. A client address (the last X-Forwarded-For entry, which the
   stack's proxy writes, else the peer) with MLFLOW_LOGIN_FAILURES_PER_MINUTE failed sign-ins (401) in the
   last minute gets 429 for every request with credentials until the oldest is a minute old; other clients
   sign in as before. Each worker counts its own (0 turns this off).

4. Sign-in (the ini's authorization_function, `authenticate`) is basic-auth's check of the user's password,
   remembered per worker for the auth config's auth_cache_ttl_seconds together with the account's password
   hash it was checked against: one query per request instead of a deliberately slow hash (about 0.3 s of
   CPU and 32 MiB each), and a changed password or a removed account stops at once in every worker. (MLflow's
   own cache stays valid in the other workers until it expires; with a course's students each signing in to
   each worker every 30 s, their hashes alone took more than the server's CPU.)
5. A worker runs at most MLFLOW_WORKER_THREADS requests at once (the Flask app runs in anyio's thread pool,
   40 threads by default); the others wait in its event loop, where they cost little memory. Each running
   request may hash a password (scrypt: 32 MiB) and hold database connections.

6. Metrics (/metrics, MLflow's Prometheus endpoint): basic-auth lets admins only read them (it refuses every route
   without a rule of its own to other users, MLFLOW_BASIC_AUTH_FAIL_CLOSED). This module's hook before basic-auth's
   answers them to the account of a monitoring system's scrapes, MLFLOW_METRICS_USERNAME, too, and refuses that
   account everything else (its name compared without case, as the auth store's MySQL collation finds it).

Admins are exempt from rules 1 and 2, as in basic-auth. Everything else is basic-auth's own: this module
registers a Flask before-request hook that runs after basic-auth's, which has authenticated the caller by
then, and the throttle's and rule 6's hooks before it.
It reads names private to the pinned MLflow's `mlflow.server.auth`; `check_mlflow()` runs when the image
is built, so an MLflow upgrade that moves them fails the build, not a student's request.
"""
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
import urllib.parse

import anyio.to_thread
from cachetools import TTLCache
from flask import Flask, Response, current_app, jsonify, make_response, request
from mlflow.exceptions import MlflowException
from mlflow.protos.model_registry_pb2 import CreateModelVersion, CreateRegisteredModel, RenameRegisteredModel
from mlflow.protos.service_pb2 import CreateExperiment, UpdateExperiment
from mlflow.server import app as mlflow_app
from mlflow.server import auth
from werkzeug.security import check_password_hash

# The parts of mlflow.server.auth this module relies on (checked at image build time).
AUTH_NAMES = ("create_app", "is_unprotected_route", "authenticate_request", "sender_is_admin",
              "_get_request_message", "_authorize_run_id", "_authorize_logged_model_id",
              "_get_registered_model_or_prompt_permission", "_get_experiment_permission", "_parse_model_uri",
              "make_basic_auth_response", "_is_disabled_legacy_admin_login")

API = r"^/(?:ajax-)?api/2\.0/mlflow/"
# Each rule: the request's path, the request message, and the fields holding a name to own.
NAMED = [
    (re.compile(API + r"experiments/create$"), CreateExperiment, "name"),
    (re.compile(API + r"experiments/update$"), UpdateExperiment, "new_name"),
    (re.compile(API + r"registered-models/create$"), CreateRegisteredModel, "name"),
    (re.compile(API + r"registered-models/rename$"), RenameRegisteredModel, "new_name"),
]
CREATE_EXPERIMENT = NAMED[0][0]
CREATE_MODEL_VERSION = re.compile(API + r"model-versions/create$")
RULED = [path for path, _message, _field in NAMED] + [CREATE_MODEL_VERSION]
# Artifact paths are <experiment id>/<run id>/artifacts/..., in a workspace: workspaces/<name>/<id>/...
EXPERIMENT_PATH = re.compile(r"^(?:workspaces/[^/]+/)?(\d+)(?:/|$)")
PROXY_PATH = re.compile(r"^/api/2\.0/mlflow-artifacts/artifacts/(.*)$")
# MLflow's own placeholders for a prompt version's source (MLflow refuses any other source for prompts).
PROMPT_SOURCES = {"dummy-source"}
# Rule 3: failed sign-ins per client address in this worker, the times of those in the last minute.
LOGIN_FAILURES_PER_MINUTE = int(os.environ.get("MLFLOW_LOGIN_FAILURES_PER_MINUTE", "10"))
_failures: "dict[str, list[float]]" = {}
WORKER_THREADS = int(os.environ.get("MLFLOW_WORKER_THREADS", "0"))
# Rule 4: (username, password hash, keyed digest of the password) of the sign-ins this worker checked.
_checked = TTLCache(maxsize=10000, ttl=max(auth.auth_config.auth_cache_ttl_seconds, 1))
_checked_lock = threading.Lock()
_digest_key = secrets.token_bytes(32)
# Rule 6.
METRICS_PATH = "/metrics"
METRICS_USERNAME = os.environ.get("MLFLOW_METRICS_USERNAME", "").casefold()


def check_mlflow():
    """Fail unless the installed MLflow has every name this module uses (run at image build time)."""
    missing = [name for name in AUTH_NAMES if not callable(getattr(auth, name, None))]
    if missing:
        raise SystemExit(f"mlops_mlflow_auth: this MLflow lacks mlflow.server.auth.{', '.join(missing)}")


def authenticate():
    """The request's basic-auth credentials if they are an account's current password, else basic-auth's 401."""
    credentials = request.authorization
    if credentials is None or not credentials.username:
        return auth.make_basic_auth_response()
    try:
        user = auth.store.get_user(credentials.username)
    except MlflowException:
        return auth.make_basic_auth_response()
    password = credentials.password or ""
    key = (user.username, user.password_hash, hmac.new(_digest_key, password.encode(), hashlib.sha256).digest())
    with _checked_lock:
        if key in _checked:
            return credentials
    if not check_password_hash(user.password_hash, password) or \
            auth._is_disabled_legacy_admin_login(user.username, password, user):
        return auth.make_basic_auth_response()
    if auth.auth_config.auth_cache_ttl_seconds > 0:
        with _checked_lock:
            _checked[key] = True
    return credentials


def create_app(app=mlflow_app):
    """basic-auth's app, with this module's hook after basic-auth's own, and the throttle and the metrics account's
    hook before it."""
    result = auth.create_app(app)
    app.before_request(before_request)
    app.before_request_funcs.setdefault(None, []).insert(0, metrics_account)
    app.before_request_funcs[None].insert(0, throttle)
    app.after_request(count_failure)
    if isinstance(result, Flask) or not WORKER_THREADS:
        return result  # a WSGI server (gunicorn, waitress) sizes its own threads
    return bounded(result, WORKER_THREADS)


def bounded(asgi_app, threads):
    """asgi_app with its worker's thread pool (anyio's default limiter, one per event loop) set to `threads`
    when the server starts it (the lifespan event)."""
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        await asgi_app(scope, receive, send)
    return app


def client_address():
    forwarded = request.headers.get("X-Forwarded-For", "")
    return forwarded.rsplit(",", 1)[-1].strip() or request.remote_addr or ""


def recent_failures(address, now):
    recent = [moment for moment in _failures.pop(address, []) if now - moment < 60]
    if recent:
        _failures[address] = recent
    return recent


def throttle() -> "Response | None":
    """429 for a client with too many failed sign-ins in the last minute, before basic-auth checks anything."""
    if not LOGIN_FAILURES_PER_MINUTE or request.authorization is None:
        return None
    recent = recent_failures(client_address(), time.monotonic())
    if len(recent) < LOGIN_FAILURES_PER_MINUTE:
        return None
    response = jsonify(error_code="RESOURCE_EXHAUSTED",
                       message="Too many failed sign-ins from your address: try again in a minute")
    response.status_code = 429
    response.headers["Retry-After"] = str(int(60 - (time.monotonic() - recent[0])) + 1)
    return response


def count_failure(response):
    if LOGIN_FAILURES_PER_MINUTE and response.status_code == 401 and request.authorization is not None:
        address = client_address()
        _failures[address] = recent_failures(address, time.monotonic()) + [time.monotonic()]
    return response


def owns_name(username, name):
    return name == username or name.startswith(username + ".")


def denied(message):
    response = jsonify(error_code="PERMISSION_DENIED", message=message)
    response.status_code = 403
    return response


def before_request() -> "Response | None":
    """Only the few requests the rules cover pay for them (a path match); the rest go on at once."""
    if request.method != "POST" or not any(path.match(request.path) for path in RULED):
        return None
    if auth.is_unprotected_route(request.path) or auth.sender_is_admin():
        return None
    try:
        return check(auth.authenticate_request().username)
    except MlflowException as error:  # a malformed request: MLflow's own answer, not a 500
        return Response(error.serialize_as_json(), status=error.get_http_status_code(), mimetype="application/json")


def metrics_account() -> "Response | None":
    """Rule 6, before basic-auth's hook: the metrics account's requests, signed in, get the metrics or 403."""
    credentials = request.authorization
    if not METRICS_USERNAME or credentials is None or (credentials.username or "").casefold() != METRICS_USERNAME \
            or auth.is_unprotected_route(request.path):
        return None
    signed_in = authenticate()
    if isinstance(signed_in, Response):
        return signed_in
    if request.path != METRICS_PATH or request.method != "GET" or request.url_rule is None:
        return denied("the metrics account reads /metrics only")
    return make_response(current_app.view_functions[request.url_rule.endpoint](**request.view_args))


def check(username) -> "Response | None":
    for path, message, field in NAMED:
        if path.match(request.path):
            msg = auth._get_request_message(message())
            name = getattr(msg, field)
            if name and not owns_name(username, name):
                return denied(f"'{name}' is not a name of yours: start it with '{username}.'")
            if path is CREATE_EXPERIMENT and msg.artifact_location:
                return denied("the server chooses an experiment's artifact location: leave artifact_location empty")
            return None
    msg = auth._get_request_message(CreateModelVersion())
    if not source_readable(msg.source, username):
        return denied(f"model version source '{msg.source}' is not a run, model or artifact path you may read")
    return None


def source_readable(source, username):
    """Whether a model version's source resolves to a run, model or experiment the caller may read."""
    if source in PROMPT_SOURCES:
        return True
    if urllib.parse.unquote(source) != source:
        return False  # no escapes: the path the server reads is the path checked here
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme == "runs":
        run_id = parsed.path.lstrip("/").split("/")[0]
        return bool(run_id) and not parsed.netloc and auth._authorize_run_id(run_id, "read")
    if parsed.scheme == "models":
        return not parsed.netloc and model_readable(source)
    path = artifact_path(source)
    match = EXPERIMENT_PATH.match(path) if path is not None else None
    return bool(match) and experiment_readable(match.group(1), username)


def model_readable(source):
    try:
        model = auth._parse_model_uri(source)
    except MlflowException:
        return False
    if model.name is not None:
        return readable(auth._get_registered_model_or_prompt_permission, model.name)
    return bool(model.model_id) and auth._authorize_logged_model_id(model.model_id, "read")


def experiment_readable(experiment_id, username):
    return readable(lambda key: auth._get_experiment_permission(key, username), experiment_id)


def readable(permission, key):
    """A missing resource reads as a denial (403, not 404: no oracle for which ids exist)."""
    try:
        return permission(key).can_read
    except MlflowException:
        return False


def artifact_path(source, destination=None):
    """The path of source inside the server's artifact store, or None if it points elsewhere."""
    destination = destination if destination is not None else os.environ.get("MLFLOW_ARTIFACTS_DESTINATION", "")
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme == "mlflow-artifacts":
        path = parsed.path
    elif parsed.scheme in ("http", "https"):
        proxied = PROXY_PATH.match(re.sub(r"/+", "/", parsed.path))
        if not proxied:
            return None
        path = proxied.group(1)
    elif destination and source.startswith(destination.rstrip("/") + "/"):
        path = source[len(destination.rstrip("/")) + 1:]
    else:
        return None
    path = re.sub(r"/+", "/", path).lstrip("/")
    return None if ".." in path.split("/") else path
