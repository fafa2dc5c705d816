"""Pure functions of the minio_* modules: policy comparison, policy lists, expiry rules, error lines."""
import json

import pytest
from minio.commonconfig import ENABLED, Filter
from minio.error import MinioAdminException, S3Error
from minio.lifecycleconfig import Expiration, LifecycleConfig, Rule

from stackenv import load_ansible_module as load

minio_policy = load("minio_policy")
minio_user = load("minio_user")
minio_bucket = load("minio_bucket")
from ansible.module_utils import minio_common  # noqa: E402  (found once a module is loaded)

STORED = {  # how the server returns a policy: lists everywhere, its own order
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"], "Resource": ["arn:aws:s3:::a/*"]},
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::a"],
         "Condition": {"StringLike": {"s3:prefix": ["home/*"]}}},
    ],
}


@pytest.mark.parametrize("given", [
    # the same document as written in a playbook: scalars, another order of statements and actions
    {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::a",
         "Condition": {"StringLike": {"s3:prefix": "home/*"}}},
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::a/*"}]},
    # duplicates and an empty Sid change nothing
    {"Version": "2012-10-17", "Statement": [
        {"Sid": "", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:GetObject"],
         "Resource": ["arn:aws:s3:::a/*"]},
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::a"],
         "Condition": {"StringLike": {"s3:prefix": ["home/*"]}}}]},
])
def test_equivalent_policies_compare_equal(given):
    assert minio_policy.normalize_policy(given) == minio_policy.normalize_policy(STORED)


@pytest.mark.parametrize("change", [
    lambda p: p["Statement"][0].update(Action=["s3:GetObject"]),
    lambda p: p["Statement"][0].update(Effect="Deny"),
    lambda p: p["Statement"][0].update(Resource=["arn:aws:s3:::b/*"]),
    lambda p: p["Statement"][1]["Condition"]["StringLike"].update({"s3:prefix": ["other/*"]}),
    lambda p: p["Statement"][0].update(Sid="named"),
    lambda p: p["Statement"].pop(),
])
def test_changed_policies_differ(change):
    changed = json.loads(json.dumps(STORED))
    change(changed)
    assert minio_policy.normalize_policy(changed) != minio_policy.normalize_policy(STORED)


@pytest.mark.parametrize("document", [None, {}])
def test_no_policy_is_none(document):
    assert minio_policy.normalize_policy(document) is None


def test_condition_booleans_compare_as_the_server_stores_them():
    given = {"Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*",
                            "Condition": {"Bool": {"aws:SecureTransport": False}}}]}
    stored = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": ["s3:*"], "Resource": ["*"],
                                                      "Condition": {"Bool": {"aws:SecureTransport": ["false"]}}}]}
    assert minio_policy.normalize_policy(given) == minio_policy.normalize_policy(stored)


@pytest.mark.parametrize("value,expected", [
    (None, []),
    ("", []),
    ("developer", ["developer"]),
    ("teacher,developer", ["developer", "teacher"]),
    ("developer, cache,", ["cache", "developer"]),
])
def test_policy_names(value, expected):
    assert minio_user.policy_names(value) == expected


def rule(rule_id, days):
    return Rule(ENABLED, rule_filter=Filter(prefix=""), rule_id=rule_id, expiration=Expiration(days=days))


@pytest.mark.parametrize("config,days", [
    (None, 0),
    (LifecycleConfig([rule("other", 5)]), 0),
    (LifecycleConfig([rule("other", 5), rule(minio_bucket.RULE_ID, 30)]), 30),
])
def test_expiry_days(config, days):
    assert minio_bucket.expiry_days(config) == days


@pytest.mark.parametrize("config,days,expected", [
    (None, 7, [(minio_bucket.RULE_ID, 7)]),
    (None, 0, []),
    (LifecycleConfig([rule(minio_bucket.RULE_ID, 30)]), 0, []),
    (LifecycleConfig([rule(minio_bucket.RULE_ID, 30)]), 7, [(minio_bucket.RULE_ID, 7)]),
    (LifecycleConfig([rule("other", 5), rule(minio_bucket.RULE_ID, 30)]), 0, [("other", 5)]),
    (LifecycleConfig([rule("other", 5)]), 7, [("other", 5), (minio_bucket.RULE_ID, 7)]),
])
def test_with_expiry_keeps_other_rules(config, days, expected):
    rules = minio_bucket.with_expiry(config, days)
    assert [(r.rule_id, r.expiration.days) for r in rules] == expected


def s3_error(code, message):
    return S3Error(None, code, message, "/", "request", "host")


@pytest.mark.parametrize("error,line", [
    (MinioAdminException("404", json.dumps({"Code": "XMinioAdminNoSuchPolicy",
                                            "Message": "The policy does not exist."})),
     "XMinioAdminNoSuchPolicy: The policy does not exist."),
    (MinioAdminException("502", "<html>\nBad gateway\n</html>"), "HTTP 502: <html> Bad gateway </html>"),
    (s3_error("AccessDenied", "Access Denied."), "AccessDenied: Access Denied."),
    (ValueError("invalid bucket name Ab"), "invalid bucket name Ab"),
    (RuntimeError("first line\n  second line"), "first line second line"),
    (RuntimeError(), "RuntimeError"),
])
def test_error_message(error, line):
    assert minio_common.error_message(error) == line


def test_unreachable_server_is_one_line():
    import urllib3
    error = urllib3.exceptions.MaxRetryError(None, "/", reason=urllib3.exceptions.NewConnectionError(
        None, "Failed to establish a new connection: [Errno 111] Connection refused"))
    message = minio_common.error_message(error)
    assert message.startswith("cannot reach the server:") and "\n" not in message


@pytest.mark.parametrize("body,code", [
    (json.dumps({"Code": "XMinioAdminNoSuchUser"}), "XMinioAdminNoSuchUser"),
    ("not json", ""),
    ("", ""),
])
def test_admin_error_code(body, code):
    assert minio_common.admin_error_code(MinioAdminException("404", body)) == code


def test_secret_options_are_hidden():
    spec = minio_common.minio_argument_spec(secret_key=dict(type="str", no_log=True))
    assert spec["minio_secret_key"]["no_log"] and spec["secret_key"]["no_log"]
    assert "minio_endpoint" in spec["minio_url"]["aliases"]
