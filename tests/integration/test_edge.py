"""The gateway's edge against real Envoy (issue 12, items 5, 7, 9, 10, 11 and the smaller ones):
what the request headers already decide is refused before a body byte is read; a `?key=` leaves
every path before anything is logged; only allowlisted client headers reach the upstream; billing
records carry an id the client cannot choose; HTTP/2 request trailers do not skip the body phase;
requests Envoy refuses itself are dated now.

A module-level stack of its own (2 workers) with one extra account whose rate is 2 a minute, so
that its window is this module's alone."""
import hashlib
import json
import socket
import time
import urllib.error
import urllib.request

import pytest

from tollgate_harness import Stack

KEY = "sk-demo-active"
ONE_KEY = "sk-edge-one-per-minute"
ONE_RPM = 2
CHAT = {"model": "qai-flash", "messages": [{"role": "user", "content": "hi"}]}


def _patch(cfg):
    cfg["accounts"].append({"id": "acct-edge-one", "status": "active", "rpm": ONE_RPM, "image_rpm": 1})
    cfg["keys"].append({"id": "key-edge-one", "account": "acct-edge-one",
                        "sha256": hashlib.sha256(ONE_KEY.encode()).hexdigest()})
    return cfg


@pytest.fixture(scope="module")
def edge():
    s = Stack(concurrency=2, patch_filter=_patch, log_level="info")
    s.start()
    yield s
    s.stop()


def request(stack, method, path, headers=None, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(stack.url + path, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def head_only(stack, method, path, headers, timeout=5.0):
    """Sends only a request's headers (the body they announce never comes) and reads the reply:
    it can only arrive if the gateway decided at the headers."""
    sock = socket.create_connection(("127.0.0.1", stack.gateway_port), timeout=timeout)
    try:
        head = f"{method} {path} HTTP/1.1\r\nHost: gateway\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        sock.sendall(head.encode())
        buf = b""
        deadline = time.time() + timeout
        while b"\r\n\r\n" not in buf:
            if time.time() > deadline:
                raise AssertionError(f"no reply at the headers within {timeout} s: {buf[:200]!r}")
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed without a reply: {buf[:200]!r}")
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        hdrs = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        n = int(hdrs.get("content-length", "0"))
        while len(rest) < n:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return int(lines[0].split()[1]), hdrs, rest[:n]
    finally:
        sock.close()


def away_from_minute_edge(margin=4.0):
    """Waits until the rate window (the unix minute) has at least `margin` s left."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.05)


def upstream_count(stack):
    return len(stack.backend_requests())


# --- item 5: refusals at the headers ------------------------------------------------------------

def test_account_over_its_rate_is_refused_at_the_headers_before_its_body(edge):
    away_from_minute_edge(6)
    auth = ("Authorization", f"Bearer {ONE_KEY}")
    for _ in range(ONE_RPM):  # `GET /v1/models` counts against the rate
        assert request(edge, "GET", "/v1/models", {"Authorization": f"Bearer {ONE_KEY}"})[0] == 200
    before = upstream_count(edge)
    # 8 MiB announced, none sent: the 429 can only come from the headers.
    for path in ["/v1/chat/completions", "/v1/messages", "/v1beta/models/qai-flash:generateContent",
                 "/v1/audio/speech", "/v1/audio/transcriptions"]:
        t0 = time.time()
        ct = "multipart/form-data; boundary=B" if path.endswith("transcriptions") else "application/json"
        status, h, body = head_only(edge, "POST", path, [auth, ("x-api-key", ONE_KEY), ("Content-Type", ct),
                                                        ("Content-Length", str(8 * 1024 * 1024))])
        assert time.time() - t0 < 2.0
        assert status == 429, (path, body)
        assert h["x-ratelimit-limit-requests"] == str(ONE_RPM)
        assert h["x-ratelimit-remaining-requests"] == "0"
        assert 1 <= int(h["retry-after"]) <= 60
        e = json.loads(body)
        if path == "/v1/messages":
            assert e["error"]["type"] == "rate_limit_error"
        elif "generateContent" in path:
            assert e["error"]["status"] == "RESOURCE_EXHAUSTED"
        else:
            assert e["error"]["code"] == "rate_limit_exceeded"
    assert upstream_count(edge) == before


def test_images_over_their_own_rate_are_refused_at_the_headers(edge):
    away_from_minute_edge(6)
    img = {"model": "qai-imagine-turbo", "prompt": "a", "size": "256x256"}
    assert request(edge, "POST", "/v1/images/generations", {"Authorization": f"Bearer {ONE_KEY}"}, img)[0] == 200
    before = upstream_count(edge)
    status, h, body = head_only(edge, "POST", "/v1/images/generations",
                                [("Authorization", f"Bearer {ONE_KEY}"), ("Content-Length", "100000")])
    assert status == 429
    assert "image generations" in json.loads(body)["error"]["message"]
    assert h["x-ratelimit-limit-requests"] == "1"
    assert upstream_count(edge) == before


@pytest.mark.parametrize("front,path,auth,code", [
    ("openai", "/v1/chat/completions", ("Authorization", f"Bearer {KEY}"), 8 * 1024 * 1024 + 1),
    ("anthropic", "/v1/messages", ("x-api-key", KEY), 8 * 1024 * 1024 + 1),
    ("gemini", "/v1beta/models/qai-flash:generateContent", ("x-goog-api-key", KEY), 8 * 1024 * 1024 + 1),
    ("openai", "/v1/images/generations", ("Authorization", f"Bearer {KEY}"), 128 * 1024 + 1),
    ("openai", "/v1/videos/generations", ("Authorization", f"Bearer {KEY}"), 128 * 1024 + 1),
    ("openai", "/v1/audio/speech", ("Authorization", f"Bearer {KEY}"), 128 * 1024 + 1),
])
def test_content_length_over_the_endpoint_cap_is_413_at_the_headers(edge, front, path, auth, code):
    before = upstream_count(edge)
    status, h, body = head_only(edge, "POST", path, [auth, ("Content-Type", "application/json"),
                                                    ("Content-Length", str(code))])
    assert status == 413, body
    e = json.loads(body)
    if front == "openai":
        assert e["error"]["code"] == "request_entity_too_large"
    elif front == "anthropic":
        assert e["error"]["type"] == "request_too_large"
    else:
        assert e["error"]["code"] == 413
    assert upstream_count(edge) == before


def test_content_length_at_the_media_cap_is_read(edge):
    """At the cap exactly, the headers pass (the cap is inclusive): a padded valid image body."""
    body = {"model": "qai-imagine-turbo", "prompt": "a", "size": "256x256", "pad": ""}
    raw = json.dumps(body).encode()
    raw = json.dumps({**body, "pad": "x" * (128 * 1024 - len(raw))}).encode()
    assert len(raw) == 128 * 1024
    status, _, out = request(edge, "POST", "/v1/images/generations", {"Authorization": f"Bearer {KEY}"}, raw=raw)
    # Read, parsed and refused for its unknown field or accepted: never 413.
    assert status != 413, out


def test_chunked_media_body_is_refused_once_buffered_past_its_cap(edge):
    """No Content-Length: the 413 comes as soon as what is buffered passes 128 KiB, while the
    client is still sending (it never sends the end of the body)."""
    sock = socket.create_connection(("127.0.0.1", edge.gateway_port), timeout=10)
    try:
        sock.sendall((f"POST /v1/images/generations HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {KEY}\r\n"
                      "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
        piece = b'{"model":"qai-imagine-turbo","prompt":"' + b"x" * 70_000
        sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        piece = b"x" * 70_000
        sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, f"closed without a reply: {buf!r}"
            buf += chunk
        assert buf.startswith(b"HTTP/1.1 413"), buf[:200]
        assert b"request_entity_too_large" in buf or b"request_entity_too_large" in sock.recv(65536)
    finally:
        sock.close()


# --- item 7: `?key=` never logged ---------------------------------------------------------------

KEY_PATHS = [
    ("POST", "/v1beta/models/qai-flash:countTokens"),
    ("POST", "/v1beta/models/qai-flash:embedContent"),
    ("GET", "/v1/models"),
    ("GET", "/v1beta/files"),
    ("GET", "/v1beta/models/qai-flash:generateContent"),  # wrong method
    ("DELETE", "/v1/chat/completions"),  # wrong method
    ("GET", "/nowhere/at/all"),
    ("POST", "/v1/chat/completions"),
    ("GET", "/v1beta/models"),
]


def test_query_key_never_reaches_access_log_records_or_envoy_log_on_any_path(edge):
    keys = [KEY, "sk-edge-wrong-query-key-0001"]
    statuses = []
    for k in keys:
        for method, path in KEY_PATHS:
            for query in [f"?key={k}", f"?alt=sse&key={k}&x=1", f"?key={k}&key={k}", f"?KEY={k}", f"?%6Bey={k}"]:
                body = CHAT if method == "POST" else None
                statuses.append(request(edge, method, path + query, body=body)[0])
    assert len(statuses) == 2 * len(KEY_PATHS) * 5
    time.sleep(0.5)  # access logs flush every 100 ms
    logs = {"access log": edge.access_log.read_text(), "billing records": edge.billing_log.read_text(),
            "envoy log": edge.envoy_log.read_text()}
    assert "/nowhere/at/all" in logs["access log"] and "alt=sse" in logs["access log"]
    for where, text in logs.items():
        for k in keys:
            assert k not in text, f"a ?key= value is in the {where}"


# --- item 9: client headers upstream ------------------------------------------------------------

CREDENTIAL_HEADERS = {
    "Proxy-Authorization": f"Bearer {KEY}",
    "api-key": KEY,
    "Cookie": "session=client-cookie-value",
    "OpenAI-Organization": "org-client-organization",
    "OpenAI-Project": "proj-client-project",
    "X-Envoy-Retry-On": "5xx",
    "X-Unlisted-Header": "client-unlisted-value",
}


@pytest.mark.parametrize("front,path,auth,body", [
    ("openai", "/v1/chat/completions", {"Authorization": f"Bearer {KEY}"}, CHAT),
    ("anthropic", "/v1/messages", {"x-api-key": KEY, "anthropic-version": "2023-06-01"},
     {"model": "qai-flash", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}),
    ("gemini", "/v1beta/models/qai-flash:generateContent", {"x-goog-api-key": KEY},
     {"contents": [{"parts": [{"text": "hi"}]}]}),
    ("images", "/v1/images/generations", {"Authorization": f"Bearer {KEY}"},
     {"model": "qai-imagine-turbo", "prompt": "a", "size": "256x256"}),
])
def test_client_credentials_and_unlisted_headers_never_reach_the_upstream(edge, front, path, auth, body):
    edge.clear_backend_requests()
    status, _, out = request(edge, "POST", path, {**auth, **CREDENTIAL_HEADERS, "x-demo-usage": "1"}, body)
    assert status == 200, out
    reqs = edge.backend_requests()
    assert len(reqs) == 1
    names = {k.lower(): v for k, v in reqs[0]["headers"]}
    for h in CREDENTIAL_HEADERS:
        assert h.lower() not in names, f"{h} reached the upstream"
    for h in ["authorization", "x-api-key", "x-goog-api-key"]:
        assert KEY not in names.get(h, ""), f"the client's key reached the upstream in {h}"
    assert KEY not in json.dumps(reqs[0])
    # The configured pass-through (`x-demo-*`) and the allowlist still pass.
    assert names["x-demo-usage"] == "1"
    assert names["content-type"].startswith("application/json")


def test_chunked_upload_headers_are_filtered_too(edge):
    edge.clear_backend_requests()
    boundary = "BNDRY"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nqai-listen\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n").encode()
    form += b"\0" * 1000 + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(edge.url + "/v1/audio/transcriptions", data=form, method="POST", headers={
        "Authorization": f"Bearer {KEY}", "Content-Type": f"multipart/form-data; boundary={boundary}",
        **CREDENTIAL_HEADERS})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200
    reqs = edge.backend_requests()
    assert len(reqs) == 1
    names = {k.lower() for k, _ in reqs[0]["headers"]}
    assert not names & {h.lower() for h in CREDENTIAL_HEADERS}, names


# --- item 10: request ids -----------------------------------------------------------------------

def test_records_carry_a_minted_id_never_the_clients_own(edge):
    ids = []
    for _ in range(3):
        status, h, _ = request(edge, "POST", "/v1/chat/completions",
                               {"Authorization": f"Bearer {KEY}", "x-request-id": "client-chosen-id"}, CHAT)
        assert status == 200
        ids.append(h["x-request-id"])
    # A refused request too (401, answered by the filter).
    status, h, _ = request(edge, "POST", "/v1/chat/completions",
                           {"Authorization": "Bearer sk-nope", "x-request-id": "client-chosen-id"}, CHAT)
    assert status == 401
    ids.append(h["x-request-id"])
    assert len(set(ids)) == 4 and "client-chosen-id" not in ids, ids
    for rid in ids:
        rec = edge.billing_record(rid)
        assert rec["request_id"] == rid
        assert rec["client_request_id"] == "client-chosen-id"
    # Envoy's access log shows the same ids (the filter set them on the request).
    time.sleep(0.3)
    log = edge.access_log.read_text()
    assert [rid in log for rid in ids] == [True] * 4
    assert "client-chosen-id" not in log
    # A client without its own id: none recorded; a hostile one is bounded and sanitized.
    status, h, _ = request(edge, "POST", "/v1/chat/completions", {"Authorization": f"Bearer {KEY}"}, CHAT)
    assert edge.billing_record(h["x-request-id"])["client_request_id"] is None
    status, h, _ = request(edge, "POST", "/v1/chat/completions",
                           {"Authorization": f"Bearer {KEY}", "x-request-id": "a\"b<c>" + "z" * 300}, CHAT)
    rec = edge.billing_record(h["x-request-id"])
    assert rec["client_request_id"] == "a_b_c_" + "z" * 122


# --- item 11: HTTP/2 request trailers -----------------------------------------------------------

def h2_request(stack, path, headers, body, trailers):
    """One HTTP/2 request over cleartext (prior knowledge), body then trailers; returns
    (status, headers, body)."""
    import h2.config
    import h2.connection
    import h2.events

    sock = socket.create_connection(("127.0.0.1", stack.gateway_port), timeout=10)
    try:
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":path", path), (":scheme", "http"),
                                (":authority", "gateway"), *headers])
        conn.send_data(sid, body)
        if trailers:
            conn.send_headers(sid, trailers, end_stream=True)
        else:
            conn.end_stream(sid)
        sock.sendall(conn.data_to_send())
        status, resp_headers, data, done = None, {}, b"", False
        deadline = time.time() + 10
        while not done:
            assert time.time() < deadline, "no complete HTTP/2 response"
            chunk = sock.recv(65536)
            assert chunk, "connection closed"
            for ev in conn.receive_data(chunk):
                if isinstance(ev, h2.events.ResponseReceived):
                    resp_headers = dict(ev.headers)
                    status = int(resp_headers[":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    data += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                    done = True
            sock.sendall(conn.data_to_send())
        return status, resp_headers, data
    finally:
        sock.close()


def test_h2_request_trailers_do_not_skip_validation_routing_or_billing(edge):
    anth = {"model": "qai-flash", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    auth = [("x-api-key", KEY), ("anthropic-version", "2023-06-01"), ("content-type", "application/json"),
            ("x-demo-usage", "1")]
    trailers = [("x-trailer", "1"), ("authorization", f"Bearer {KEY}")]
    edge.clear_backend_requests()
    # Valid, with trailers: translated to the OpenAI upstream, billed like the same without them.
    status, h, data = h2_request(edge, "/v1/messages", auth, json.dumps(anth).encode(), trailers)
    assert status == 200, data
    msg = json.loads(data)
    assert msg["type"] == "message" and msg["model"] == "qai-flash"
    reqs = edge.backend_requests()
    assert len(reqs) == 1
    assert reqs[0]["path"] == "/v1/chat/completions"  # routed and rewritten upstream
    sent = json.loads(reqs[0]["body"])
    assert sent["messages"] == [{"role": "user", "content": "hi"}]
    assert KEY not in json.dumps(reqs[0])  # neither the header key nor the trailer's
    with_trailers = edge.billing_record(h["x-request-id"])
    status, h, _ = h2_request(edge, "/v1/messages", auth, json.dumps(anth).encode(), None)
    assert status == 200
    without = edge.billing_record(h["x-request-id"])
    for field in ["model", "cluster", "upstream", "prompt_tokens", "completion_tokens", "credits", "status", "estimated"]:
        assert with_trailers[field] == without[field], field
    assert with_trailers["credits"] > 0
    # Invalid with trailers: refused in the dialect, nothing upstream.
    edge.clear_backend_requests()
    # (An unknown model is Anthropic's 404 `not_found_error`.)
    for bad, want in [({**anth, "model": "nope"}, 404), ({**anth, "max_tokens": "x"}, 400)]:
        status, _, data = h2_request(edge, "/v1/messages", auth, json.dumps(bad).encode(), trailers)
        assert status == want, data
        assert json.loads(data)["type"] == "error"
    status, _, data = h2_request(edge, "/v1/messages", auth, b"{not json", trailers)
    assert status == 400
    assert edge.backend_requests() == []


# --- smaller: records of requests Envoy refuses; x-goog-api-key off Gemini paths ----------------

def test_requests_envoy_refuses_itself_are_dated_now(edge):
    time.sleep(0.5)  # earlier tests' records are flushed
    n_before = len(edge.billing_records())
    t0 = time.time()
    sock = socket.create_connection(("127.0.0.1", edge.gateway_port), timeout=10)
    try:
        big = "x" * 70_000  # over Envoy's 60 KiB of request headers
        sock.sendall(f"GET /v1/models HTTP/1.1\r\nHost: g\r\nX-Big: {big}\r\n\r\n".encode())
        got = sock.recv(65536)
    finally:
        sock.close()
    assert got.startswith(b"HTTP/1.1 431"), got[:100]
    deadline = time.time() + 5
    while len(edge.billing_records()) == n_before and time.time() < deadline:
        time.sleep(0.1)
    recs = edge.billing_records()[n_before:]
    assert len(recs) == 1, recs
    rec = recs[0]
    year = time.gmtime(t0).tm_year
    assert rec["time"].startswith(str(year)), rec
    assert 0 <= rec["duration_ms"] <= 5000, rec
    assert rec["credits"] == 0 and rec["key_id"] is None
    assert rec["status"] == 431


def test_goog_key_header_counts_only_on_gemini_paths(edge):
    for method, path, body in [("POST", "/v1/chat/completions", CHAT),
                               ("POST", "/v1/messages", {"model": "qai-flash", "max_tokens": 5,
                                                         "messages": [{"role": "user", "content": "hi"}]})]:
        status, _, out = request(edge, method, path, {"x-goog-api-key": KEY}, body)
        assert status == 401, (path, out)
    status, _, _ = request(edge, "GET", "/v1beta/models", {"x-goog-api-key": KEY})
    assert status == 200
    # google-genai's default `v1`: GET /v1/models with its key header is a Gemini client's list.
    status, _, out = request(edge, "GET", "/v1/models", {"x-goog-api-key": KEY})
    assert status == 200 and "models" in json.loads(out) and "data" not in json.loads(out), out
