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


MAX_BODY = 8 * 1024 * 1024  # max_body_bytes in envoy/production-tls.yaml


def chat_body_of(size: int, model: str = "qai-flash") -> bytes:
    """An OpenAI chat body of exactly `size` bytes: the padding is in a first user message, the
    last one is short (the demo backend echoes the last one)."""
    def body(pad: int) -> bytes:
        return json.dumps({"model": model, "messages": [{"role": "user", "content": "p" * pad},
                                                        {"role": "user", "content": "near the cap"}]}).encode()
    pad = size - len(body(0))
    out = body(pad)
    assert len(out) == size
    return out


def client(tls, http2: bool):
    return httpx.Client(verify=ssl.create_default_context(cafile=str(tls.cert)), timeout=60, http2=http2)


def billing_records(s):
    # `-`: a stream Envoy reset before the filter saw it (h2 headers over the limit), no record.
    return [json.loads(line) for line in s.billing_log.read_text().splitlines() if line.strip() not in ("", "-")]


def record_of(s, request_id: str) -> dict:
    """The one billing record with this id (records reach the file within 100 ms)."""
    deadline = time.time() + 5
    while True:
        found = [r for r in billing_records(s) if r["request_id"] == request_id]
        if found or time.time() > deadline:
            assert len(found) == 1, found
            return found[0]
        time.sleep(0.05)


PROTOCOLS = [pytest.param(False, id="http1.1"), pytest.param(True, id="h2")]


@pytest.mark.parametrize("http2", PROTOCOLS)
def test_body_up_to_max_body_bytes_works_over_http1_and_h2(tls, http2):
    # A body of exactly max_body_bytes is served (over h2 too: the stream window is above the
    # cap), one byte more is the filter's 413 in the caller's dialect, not Envoy's plain text.
    with client(tls, http2) as http:
        base = f"https://localhost:{tls.https_port}"
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        r = http.post(f"{base}/v1/chat/completions", headers=headers, content=chat_body_of(MAX_BODY))
        assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        assert r.status_code == 200, r.text[:300]
        assert r.json()["choices"][0]["message"]["content"] == "Hello from qai-flash! You said: near the cap"
        rec = record_of(tls, r.headers["x-request-id"])
        assert (rec["status"], rec["model"], rec["key_id"], rec["estimated"]) == (200, "qai-flash", "key-demo-active", False)
        if http2:
            # Refused at the headers (declared length): driven frame by frame (see h2_declared_post).
            status, body = h2_declared_post(tls, "/v1/chat/completions", [("authorization", f"Bearer {KEY}")], MAX_BODY + 1)
            assert status == 413
            assert json.loads(body)["error"]["code"] == "request_entity_too_large"
        else:
            r = http.post(f"{base}/v1/chat/completions", headers=headers, content=chat_body_of(MAX_BODY + 1))
            assert r.status_code == 413
            assert r.json()["error"]["code"] == "request_entity_too_large"
        # The same without a Content-Length (chunked over HTTP/1.1, no length over h2): refused
        # once the buffered body passes the cap, still in the caller's dialect.
        big = chat_body_of(MAX_BODY + 1)
        r = http.post(f"{base}/v1/chat/completions", headers=headers,
                      content=iter([big[i:i + (1 << 20)] for i in range(0, len(big), 1 << 20)]))
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "request_entity_too_large"


def h2_declared_post(tls, path, headers, length):
    """Over TLS + h2: a POST whose headers declare `length` body bytes and which sends none. The
    gateway answers what the headers decide (a 413) before any body byte; a client library that
    is still sending a large body when that answer and the stream's reset arrive may fail on its
    own side (httpx raises LocalProtocolError), so the h2 case is driven frame by frame."""
    import h2.config
    import h2.connection
    import h2.events

    ctx = ssl.create_default_context(cafile=str(tls.cert))
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", tls.https_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
            assert sock.selected_alpn_protocol() == "h2"
            conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
            conn.initiate_connection()
            conn.send_headers(1, [(":method", "POST"), (":path", path), (":authority", "localhost"),
                                  (":scheme", "https"), ("content-type", "application/json"),
                                  ("content-length", str(length)), *headers])
            sock.sendall(conn.data_to_send())
            status, body = None, b""
            while True:
                data = sock.recv(65536)
                if not data:
                    raise AssertionError("the connection closed before the stream ended")
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.ResponseReceived):
                        status = int(dict(ev.headers)[":status"])
                    elif isinstance(ev, h2.events.DataReceived):
                        body += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                        return status, body
                sock.sendall(conn.data_to_send())


@pytest.mark.parametrize("http2", PROTOCOLS)
def test_oversize_request_is_413_in_the_callers_dialect(tls, http2):
    big = "x" * (10 * 1000 * 1000)
    with client(tls, http2) as http:
        base = f"https://localhost:{tls.https_port}"
        if http2:
            n = 10 * 1000 * 1000
            status, body = h2_declared_post(tls, "/v1/chat/completions", [("authorization", f"Bearer {KEY}")], n)
            assert status == 413
            assert json.loads(body)["error"]["code"] == "request_entity_too_large"
            status, body = h2_declared_post(tls, "/v1/messages", [("x-api-key", KEY), ("anthropic-version", "2023-06-01")], n)
            assert status == 413
            assert json.loads(body)["error"]["type"] == "request_too_large"
        else:
            r = http.post(f"{base}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                          json={"model": "qai-flash", "messages": [{"role": "user", "content": big}]})
            assert r.status_code == 413
            assert r.json()["error"]["code"] == "request_entity_too_large"
            r = http.post(f"{base}/v1/messages", headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
                          json={"model": "qai-flash", "max_tokens": 5, "messages": [{"role": "user", "content": big}]})
            assert r.status_code == 413
            assert r.json()["error"]["type"] == "request_too_large"
        # Headers over the 60 KiB limit are refused by Envoy before the filter: 431 over
        # HTTP/1.1; over h2 Envoy's codec resets the stream (no status exists to read).
        if http2:
            with pytest.raises(httpx.RemoteProtocolError):
                http.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {KEY}", "x-pad": "p" * 70_000})
        else:
            r = http.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {KEY}", "x-pad": "p" * 70_000})
            assert r.status_code == 431
    with client(tls, http2) as http:
        # The gateway still answers.
        assert http.get(f"https://localhost:{tls.https_port}/v1/models",
                        headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_billing_records_and_labelled_metrics(tls):
    # The production example writes one billing record per request (refusals too) and exports
    # Tollgate's metrics with their labels.
    with client(tls, True) as http:
        base = f"https://localhost:{tls.https_port}"
        ok = http.post(f"{base}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                       json={"model": "qai-pro", "messages": [{"role": "user", "content": "bill me"}]})
        assert ok.status_code == 200
        bad = http.post(f"{base}/v1/chat/completions", headers={"Authorization": "Bearer sk-nope"},
                        json={"model": "qai-pro", "messages": [{"role": "user", "content": "x"}]})
        assert bad.status_code == 401
        rec = record_of(tls, ok.headers["x-request-id"])
        assert (rec["status"], rec["model"], rec["cluster"], rec["estimated"]) == (200, "qai-pro", "demo_text", False)
        assert rec["credits"] > 0
        rec = record_of(tls, bad.headers["x-request-id"])
        assert (rec["status"], rec["error"], rec["key_id"]) == (401, "unauthorized", None)
        prom = urllib.request.urlopen(f"{tls.admin}/stats/prometheus", timeout=5).read().decode()
        lines = [l for l in prom.splitlines() if l.startswith("tollgate_requests{")]
        assert any('model="qai-pro"' in l and 'class="2xx"' in l for l in lines), lines
        assert any(l.startswith('tollgate_errors{code="unauthorized"') for l in prom.splitlines())
        assert "model=.=" not in prom


def test_every_cluster_has_circuit_breakers(tls):
    with urllib.request.urlopen(f"{tls.admin}/clusters?format=json", timeout=5) as r:
        clusters = json.loads(r.read())["cluster_statuses"]
    limits = {c["name"]: c["circuit_breakers"]["thresholds"][0] for c in clusters}
    assert sorted(limits) == ["demo_image", "demo_text", "demo_video"]
    for name, t in limits.items():
        assert (t["max_connections"], t["max_pending_requests"], t["max_requests"]) == (1000, 1000, 1000), name


def test_connection_limits_are_configured(tls):
    with urllib.request.urlopen(f"{tls.admin}/stats", timeout=5) as r:
        stats = r.read().decode()
    assert "connection_limit.gateway_https.active_connections" in stats
    assert "overload.envoy.resource_monitors.global_downstream_max_connections" in stats
