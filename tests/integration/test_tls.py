"""The production example (envoy/production-tls.yaml) in real Envoy, with a self-signed
certificate made here by openssl: HTTPS works with the openai SDK verifying that certificate;
plain HTTP is redirected to HTTPS without echoing or forwarding the credentials; an oversize
request is refused in the caller's dialect."""
import json
import socket
import ssl
import sys
import urllib.request
import warnings
from pathlib import Path

import httpx2 as httpx  # the HTTP client the openai SDK pinned in requirements.txt uses
import openai
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))

from tls_stack import TlsStack, make_self_signed  # noqa: E402

KEY = "sk-demo-active"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    cert, key = make_self_signed(tmp_path_factory.mktemp("tls"))
    with TlsStack(cert, key) as s:
        yield s


def backend_requests(s):
    with urllib.request.urlopen(f"{s.backend}/__demo/requests", timeout=5) as r:
        return json.loads(r.read())


def raw_http(port, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(request)
        out = b""
        while chunk := c.recv(65536):
            out += chunk
    return out


def test_https_with_the_openai_sdk_verifying_the_certificate(tls):
    with httpx.Client(verify=ssl.create_default_context(cafile=str(tls.cert))) as http:
        client = openai.OpenAI(base_url=f"https://localhost:{tls.https_port}/v1", api_key=KEY,
                               http_client=http, max_retries=0)
        r = client.chat.completions.create(model="qai-flash", messages=[{"role": "user", "content": "over tls"}])
        assert r.choices[0].message.content == "Hello from qai-flash! You said: over tls"
        chunks = client.chat.completions.create(model="qai-flash", stream=True,
                                                messages=[{"role": "user", "content": "stream"}])
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Hello from qai-flash")


def test_https_refuses_an_unverified_client_side_check(tls):
    # The certificate is self-signed: a client that verifies against the system store refuses it.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://localhost:{tls.https_port}/v1/models", timeout=5)
    # And TLS below 1.2 is not offered.
    ctx = ssl.create_default_context(cafile=str(tls.cert))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # asking for TLS 1.1 is the point
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with pytest.raises(ssl.SSLError):
        with socket.create_connection(("127.0.0.1", tls.https_port), timeout=5) as sock:
            ctx.wrap_socket(sock, server_hostname="localhost")


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_plain_http_is_redirected_to_https_without_credentials(tls, method):
    before = len(backend_requests(tls))
    body = json.dumps({"model": "qai-flash", "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = (
        f"{method} /v1beta/models/qai-flash:generateContent?key={KEY}&alt=sse HTTP/1.1\r\n"
        f"Host: localhost:{tls.http_port}\r\nAuthorization: Bearer {KEY}\r\nx-api-key: {KEY}\r\n"
        f"x-goog-api-key: {KEY}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    resp = raw_http(tls.http_port, request)
    head = resp.split(b"\r\n\r\n", 1)[0].decode()
    status = int(head.split()[1])
    assert status in (301, 308), head
    location = next(line.split(":", 1)[1].strip() for line in head.split("\r\n") if line.lower().startswith("location:"))
    assert location == f"https://localhost:{tls.https_port}/v1beta/models/qai-flash:generateContent", location
    # The key appears nowhere in the redirect, was forwarded nowhere, and is not logged.
    assert KEY.encode() not in resp
    assert len(backend_requests(tls)) == before, "the plain-HTTP request reached an upstream"
    assert KEY not in tls.envoy_log.read_text()
    if tls.access_log.exists():
        assert KEY not in tls.access_log.read_text()


def test_httpx_following_the_redirect_lands_on_https(tls):
    # A client that follows the redirect ends up on HTTPS (what the seed documents).
    with httpx.Client(verify=ssl.create_default_context(cafile=str(tls.cert)), follow_redirects=True) as http:
        r = http.get(f"http://localhost:{tls.http_port}/v1/models", headers={"Authorization": f"Bearer {KEY}"})
        assert r.history and r.history[0].status_code in (301, 308)
        assert str(r.url).startswith(f"https://localhost:{tls.https_port}/")


def test_oversize_request_is_413_in_the_callers_dialect(tls):
    big = "x" * (10 * 1000 * 1000)
    with httpx.Client(verify=ssl.create_default_context(cafile=str(tls.cert)), timeout=30) as http:
        base = f"https://localhost:{tls.https_port}"
        r = http.post(f"{base}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                      json={"model": "qai-flash", "messages": [{"role": "user", "content": big}]})
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "request_entity_too_large"
        r = http.post(f"{base}/v1/messages", headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
                      json={"model": "qai-flash", "max_tokens": 5, "messages": [{"role": "user", "content": big}]})
        assert r.status_code == 413
        assert r.json()["error"]["type"] == "request_too_large"
        # Headers over the 60 KiB limit are refused by Envoy before the filter.
        r = http.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {KEY}", "x-pad": "p" * 70_000})
        assert r.status_code == 431
        # The gateway still answers.
        assert http.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_connection_limits_are_configured(tls):
    with urllib.request.urlopen(f"{tls.admin}/stats", timeout=5) as r:
        stats = r.read().decode()
    assert "connection_limit.gateway_https.active_connections" in stats
    assert "overload.envoy.resource_monitors.global_downstream_max_connections" in stats
