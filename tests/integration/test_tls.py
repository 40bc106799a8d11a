"""The production example (envoy/production-tls.yaml) in real Envoy, with a self-signed
certificate made here by openssl: HTTPS works with the openai SDK verifying that certificate;
plain HTTP is redirected to HTTPS without echoing or forwarding the credentials; an oversize
request is refused in the caller's dialect."""
import json
import socket
import ssl
import sys
import time
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


def admin_stats(s) -> dict:
    with urllib.request.urlopen(f"{s.admin}/stats?format=json&filter=^listener\\.127", timeout=5) as r:
        return {st["name"]: st.get("value", 0) for st in json.loads(r.read())["stats"] if "value" in st}


def https_ssl_stat(s, suffix: str) -> int:
    """A counter of the HTTPS listener's TLS stats (`listener.127.0.0.1_<port>.ssl.<suffix>`)."""
    return admin_stats(s).get(f"listener.127.0.0.1_{s.https_port}.ssl.{suffix}", 0)


def legacy_context(max_version):
    """A client context that really offers old protocol versions: OpenSSL 3 refuses to send a TLS
    1.0/1.1 ClientHello at its default security level, so the level is lowered to 0 (checked below
    by the same context completing a TLS 1.2 handshake, and by the server counting the refusal)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # asking for TLS 1.1 is the point
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = max_version
    return ctx


def handshake(port, ctx):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with ctx.wrap_socket(sock, server_hostname="localhost") as t:
            return t.version(), t.getpeercert(binary_form=True)


def test_server_presents_the_configured_self_signed_certificate(tls):
    # What the server sends is exactly the certificate made for this run (by DER bytes), and it is
    # self-signed (issuer == subject): a client verifying against the system store has no anchor.
    _, der = handshake(tls.https_port, legacy_context(ssl.TLSVersion.TLSv1_3))
    assert der == ssl.PEM_cert_to_DER_cert(tls.cert.read_text())
    info = ssl._ssl._test_decode_cert(str(tls.cert))
    assert info["issuer"] == info["subject"]


def test_server_refuses_tls_below_1_2(tls):
    # The same legacy-capable client context: TLS 1.2 and 1.3 are negotiated ...
    assert handshake(tls.https_port, legacy_context(ssl.TLSVersion.TLSv1_2))[0] == "TLSv1.2"
    assert handshake(tls.https_port, legacy_context(ssl.TLSVersion.TLSv1_3))[0] == "TLSv1.3"
    # ... and a ClientHello offering at most TLS 1.1 (or 1.0) is refused by the server with a
    # protocol_version alert (a refusal on our side would be NO_PROTOCOLS_AVAILABLE, never sent),
    # which the server counts as a connection error.
    for version in (ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1):
        errors = https_ssl_stat(tls, "connection_error")
        with pytest.raises(ssl.SSLError) as e:
            handshake(tls.https_port, legacy_context(version))
        assert e.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION", e.value
        deadline = time.time() + 5
        while https_ssl_stat(tls, "connection_error") != errors + 1 and time.time() < deadline:
            time.sleep(0.05)
        assert https_ssl_stat(tls, "connection_error") == errors + 1


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
    assert tls.access_log.exists(), "Envoy opens its access log at start"
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
