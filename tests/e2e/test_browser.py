"""A student in a real browser (Debian's headless Chromium, driven by Playwright): the landing page, the
MLflow UI's sign-in and the ZenML dashboard, all through the proxy.

The browser trusts the proxy's certificate as a student's would once they import the stack's CA: this test
first verifies the certificate with that CA in Python, then pins exactly its key in Chromium
(--ignore-certificate-errors-spki-list), so no certificate error is ever ignored.
"""
import base64
import hashlib
import socket
import ssl
import urllib.parse
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from roster import STUDENT_A, STUDENT_B
from mlops_stack.stackenv import user_mlflow

CHROMIUM = "/usr/bin/chromium"
# As measured on this kind of machine: without these, Chromium keeps trying the network it cannot reach.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
RUN = uuid.uuid4().hex[:6]


def verified_spki(stack):
    """The base64 SHA-256 of the proxy certificate's public key, once the certificate verified with the CA."""
    url = urllib.parse.urlsplit(stack.url("mlflow"))
    context = ssl.create_default_context(cafile=stack.ca_file)
    with socket.create_connection((url.hostname, url.port), timeout=30) as raw:
        with context.wrap_socket(raw, server_hostname=url.hostname) as tls:
            der = tls.getpeercert(binary_form=True)
    key = x509.load_der_x509_certificate(der).public_key()
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(scope="module")
def browser(stack):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=FLAGS + [f"--ignore-certificate-errors-spki-list={verified_spki(stack)}"])
        yield chromium
        chromium.close()


def test_a_browser_that_does_not_trust_the_stack_gets_no_page(stack):
    from playwright.sync_api import Error, sync_playwright
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        with pytest.raises(Error, match="ERR_CERT_AUTHORITY_INVALID"):
            chromium.new_page().goto(stack.url("proxy") + "/")
        chromium.close()


def test_the_landing_page_leads_to_the_services(stack, browser):
    page = browser.new_page()
    page.goto(stack.url("proxy") + "/")
    assert "MLOps stack on" in page.title()
    for link in ("mlflow", "zenml", "object-store-console", "ca"):
        assert page.locator(f"a#{link}").count() == 1
    page.locator("a#ca").click()
    page.close()


def test_a_student_signs_in_to_mlflow_and_sees_their_experiment_only(stack, users, browser, monkeypatch):
    own, other = f"{STUDENT_A}.browser-{RUN}", f"{STUDENT_B}.browser-{RUN}"
    user_mlflow(users[STUDENT_A], monkeypatch).create_experiment(own)
    user_mlflow(users[STUDENT_B], monkeypatch).create_experiment(other)
    env = users[STUDENT_A]
    context = browser.new_context(http_credentials={"username": STUDENT_A, "password": env["MLFLOW_TRACKING_PASSWORD"]})
    page = context.new_page()
    page.goto(env["MLFLOW_TRACKING_URI"] + "/#/experiments")
    page.get_by_text(own).first.wait_for(timeout=60_000)
    assert other not in page.content()
    context.close()
    # Positive control of the other side: the other student's browser shows theirs.
    context = browser.new_context(http_credentials={"username": STUDENT_B,
                                                    "password": users[STUDENT_B]["MLFLOW_TRACKING_PASSWORD"]})
    page = context.new_page()
    page.goto(env["MLFLOW_TRACKING_URI"] + "/#/experiments")
    page.get_by_text(other).first.wait_for(timeout=60_000)
    assert own not in page.content()
    context.close()


def test_a_wrong_mlflow_password_gets_no_page(stack, users, browser):
    context = browser.new_context(http_credentials={"username": STUDENT_A, "password": "not-the-password"})
    page = context.new_page()
    answer = page.goto(users[STUDENT_A]["MLFLOW_TRACKING_URI"] + "/#/experiments")
    assert answer.status == 401
    context.close()


def test_a_student_signs_in_to_the_zenml_dashboard(stack, users, browser):
    env = users[STUDENT_A]
    page = browser.new_context().new_page()
    page.goto(env["ZENML_STORE_URL"] + "/login")
    page.locator("input[name=username]").fill(STUDENT_A)
    page.locator("input[name=password]").fill(env["ZENML_STORE_PASSWORD"])
    page.locator("input[name=password]").press("Enter")
    page.wait_for_url(lambda url: "/login" not in url, timeout=60_000)
    # The dashboard's session (its cookie) is the student's own account.
    me = page.evaluate("fetch('/api/v1/current-user').then(answer => answer.json())")
    assert me["name"] == STUDENT_A
