"""Images, videos, speech and transcription through the gateway (issue 6), against real Envoy and
the demo backend: the openai SDK's images.generate, audio.speech.create and
audio.transcriptions.create; a video that takes 30 s; a 413 for an oversize upload before it is
read; each wrong-model and bad-field case; a billing record for each call."""
import io
import json
import socket
import struct
import time
import urllib.request

import openai
import pytest

from tollgate_harness import Stack

KEY = "sk-demo-active"


@pytest.fixture(scope="module")
def media():
    """A stack of its own: the video cluster reaches the demo backend here."""
    s = Stack(concurrency=2)
    s.start()
    yield s
    s.stop()


def client(stack, key=KEY, prefix="/v1"):
    return openai.OpenAI(base_url=stack.url + prefix, api_key=key, max_retries=0)


def post(stack, path, body, key=KEY, headers=None, timeout=30):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = {"authorization": f"Bearer {key}", "content-type": "application/json", **(headers or {})}
    req = urllib.request.Request(stack.url + path, data=data, headers=h, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def wav_bytes(seconds: float) -> bytes:
    rate = 16000
    n = int(rate * seconds)
    data = b"\x00\x00" * n
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
            + b"data" + struct.pack("<I", len(data)) + data)


def test_images_generate_with_the_sdk_bills_per_image(media):
    media.clear_backend_requests()
    r = client(media).images.with_raw_response.generate(model="qai-imagine-turbo", prompt="a cozy studio", n=3,
                                                         size="512x512", response_format="b64_json",
                                                         extra_body={"hostMedia": True, "style_hint": "warm"})
    images = r.parse()
    assert len(images.data) == 3 and images.data[0].b64_json
    import base64
    assert base64.b64decode(images.data[0].b64_json).startswith(b"\x89PNG\r\n\x1a\n")
    sent = json.loads(media.backend_requests()[-1]["body"])
    assert sent["hostMedia"] is True and sent["style_hint"] == "warm", "unknown fields pass untouched"
    rec = media.billing_record(r.headers["x-request-id"])
    assert rec["endpoint"] == "images" and rec["units"] == 3 and rec["credits"] == pytest.approx(6.0)
    assert rec["estimated"] is False and rec["status"] == 200


def test_images_under_the_api_prefix_with_urls(media):
    images = client(media, prefix="/api/v1").images.generate(model="qai-imagine-quality", prompt="a loft",
                                                             response_format="url")
    assert images.data[0].url.endswith(".png")


@pytest.mark.parametrize("body,param", [
    ({"model": "qai-imagine-turbo", "prompt": "a", "n": 5}, "n"),
    ({"model": "qai-imagine-turbo", "prompt": "a", "n": 0}, "n"),
    ({"model": "qai-imagine-turbo", "prompt": "a", "n": "two"}, "n"),
    ({"model": "qai-imagine-turbo", "prompt": "a", "size": "1792x1024"}, "size"),
    ({"model": "qai-imagine-turbo", "prompt": "a", "size": "huge"}, "size"),
    ({"model": "qai-imagine-turbo", "prompt": "x" * 4001}, "prompt"),
    ({"model": "qai-imagine-turbo", "prompt": ["a"]}, "prompt"),
    ({"model": "qai-imagine-turbo", "prompt": "a", "response_format": "gif"}, "response_format"),
])
def test_image_bad_fields_name_the_param(media, body, param):
    status, _, raw = post(media, "/v1/images/generations", body)
    err = json.loads(raw)["error"]
    assert status == 400 and err["code"] == "bad_request" and err["param"] == param, err


@pytest.mark.parametrize("path,body", [
    ("/v1/images/generations", {"model": "qai-flash", "prompt": "a"}),
    ("/v1/videos/generations", {"model": "qai-imagine-turbo", "prompt": "a"}),
    ("/v1/audio/speech", {"model": "qai-listen", "input": "hi", "voice": "alloy"}),
    ("/v1/audio/speech", {"model": "qai-flash", "input": "hi", "voice": "alloy"}),
    ("/v1/chat/completions", {"model": "qai-voice", "messages": [{"role": "user", "content": "hi"}]}),
])
def test_wrong_model_type_is_invalid_model(media, path, body):
    status, _, raw = post(media, path, body)
    err = json.loads(raw)["error"]
    assert status == 400 and err["code"] == "invalid_model" and err["param"] == "model", err


def test_image_rate_limit_is_separate_from_chat(media):
    # acct-limited: 2 image generations a minute, 5 chat requests. The window is the unix minute:
    # the three calls must fall inside one.
    left = 60 - time.time() % 60
    if left < 15:
        time.sleep(left + 0.2)
    c = client(media, key="sk-demo-limited")
    codes = []
    for _ in range(3):
        try:
            c.images.generate(model="qai-imagine-turbo", prompt="a")
            codes.append(200)
        except openai.RateLimitError as e:
            codes.append(429)
            assert "image generations per minute" in e.message
            assert int(e.response.headers["retry-after"]) >= 1
    assert codes[:2] == [200, 200] and codes[2] == 429
    chat = c.chat.completions.create(model="qai-flash", messages=[{"role": "user", "content": "hi"}])
    assert chat.choices[0].message.content


def test_video_waits_for_a_30_second_backend(media):
    t = time.time()
    status, headers, raw = post(media, "/v1/videos/generations",
                                {"model": "qai-motion", "prompt": "a kitchen walkthrough", "duration": 4, "size": "832x480"},
                                headers={"x-demo-delay-ms": "30000"}, timeout=120)
    took = time.time() - t
    assert status == 200, raw
    assert took >= 30
    body = json.loads(raw)
    assert body["data"][0]["content_type"] == "video/mp4"
    rec = media.billing_record(headers["x-request-id"])
    assert rec["units"] == 4 and rec["credits"] == pytest.approx(4.0) and rec["duration_ms"] >= 30000


@pytest.mark.parametrize("body,param", [
    ({"model": "qai-motion", "prompt": "a", "duration": 11}, "duration"),
    ({"model": "qai-motion", "prompt": "a", "duration": "long"}, "duration"),
    ({"model": "qai-motion", "prompt": "a", "fps": 0}, "fps"),
    ({"model": "qai-motion", "prompt": "a", "size": "1024x1024"}, "size"),
    ({"model": "qai-motion"}, "prompt"),
])
def test_video_bad_fields(media, body, param):
    status, _, raw = post(media, "/v1/videos/generations", body)
    err = json.loads(raw)["error"]
    assert status == 400 and err["param"] == param, err


def test_speech_with_the_sdk_bills_per_character(media):
    text = "Welcome to the gateway."
    r = client(media).audio.speech.with_raw_response.create(model="qai-voice", voice="alloy", input=text,
                                                            response_format="wav")
    audio = r.parse().content
    assert audio.startswith(b"RIFF") and audio[8:12] == b"WAVE"
    rec = media.billing_record(r.headers["x-request-id"])
    assert rec["endpoint"] == "speech" and rec["units"] == len(text)
    assert rec["credits"] == pytest.approx(len(text) * 1.5 / 1000, abs=1e-6)


def test_seed_002_tts_path(media):
    status, headers, raw = post(media, "/api/v1/tts/text_to_audio", {"model": "qai-voice", "text": "hello", "voice": "nova"})
    assert status == 200 and raw.startswith(b"RIFF"), raw[:100]
    sent = json.loads(media.backend_requests()[-1]["body"])
    assert sent["input"] == "hello"
    assert media.billing_record(headers["x-request-id"])["units"] == 5


def test_speech_bad_fields(media):
    status, _, raw = post(media, "/v1/audio/speech", {"model": "qai-voice", "input": "a", "speed": 10})
    assert status == 400 and json.loads(raw)["error"]["param"] == "speed"
    status, _, raw = post(media, "/v1/audio/speech", {"model": "qai-voice", "voice": "alloy"})
    assert status == 400 and json.loads(raw)["error"]["param"] == "input"


def test_transcription_with_the_sdk_bills_the_reported_seconds(media):
    wav = wav_bytes(3.0)
    r = client(media).audio.transcriptions.with_raw_response.create(model="qai-listen",
                                                                     file=("clip.wav", io.BytesIO(wav), "audio/wav"))
    t = r.parse()
    assert t.text.startswith("demo transcription of")
    rec = media.billing_record(r.headers["x-request-id"])
    assert rec["endpoint"] == "transcriptions" and rec["estimated"] is False
    assert rec["units"] == 3 and rec["credits"] == pytest.approx(0.3)
    assert "sk-demo" not in json.dumps(media.backend_requests()[-1])


def test_transcription_wrong_model_and_missing_model(media):
    with pytest.raises(openai.BadRequestError) as e:
        client(media).audio.transcriptions.create(model="qai-voice", file=("a.wav", io.BytesIO(wav_bytes(0.1)), "audio/wav"))
    assert e.value.code == "invalid_model"
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + wav_bytes(0.1) + f"\r\n--{boundary}--\r\n".encode()
    status, _, raw = post(media, "/v1/audio/transcriptions", body,
                          headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    err = json.loads(raw)["error"]
    assert status == 400 and err["code"] == "missing_field" and err["param"] == "model"


RX_BYTES = "http.gateway.downstream_cx_rx_bytes_total"
CAP = 25 * 1024 * 1024  # max_upload_bytes (the default)


def stats_value(stack, name):
    for line in stack.stats().splitlines():
        if line.startswith(name + ":"):
            return int(line.split(":")[1])
    raise KeyError(f"no stat {name}")


def wait_for_stat(stack, name, value, timeout=20.0):
    deadline = time.time() + timeout
    while (got := stats_value(stack, name)) != value and time.time() < deadline:
        time.sleep(0.05)
    assert got == value, f"{name} = {got}, waited for {value}"


def read_response(s):
    """One HTTP/1.1 response with a Content-Length body; fails if the connection closes first."""
    resp = b""
    while b"\r\n\r\n" not in resp:
        more = s.recv(65536)
        assert more, f"connection closed before the response headers: {resp[:300]!r}"
        resp += more
    hdrs, _, body = resp.partition(b"\r\n\r\n")
    length = int(next(l.split(b":")[1] for l in hdrs.split(b"\r\n") if l.lower().startswith(b"content-length")))
    while len(body) < length:
        more = s.recv(65536)
        assert more, f"connection closed inside the response body: {resp[:300]!r}"
        body += more
    return hdrs.split(b"\r\n", 1)[0], body[:length]


def test_oversize_upload_gets_413_before_it_is_read(media):
    """A declared 30 MB upload is refused at the headers: nothing of the body is sent, Envoy's
    downstream byte counter grows by exactly the bytes the client sent (the head and the start
    of a body), and the backend never sees the request."""
    media.clear_backend_requests()
    rx = stats_value(media, RX_BYTES)
    size = 30 * 1024 * 1024
    s = socket.create_connection(("127.0.0.1", media.gateway_port), timeout=10)
    head = (f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: multipart/form-data; boundary=zz\r\nContent-Length: {size}\r\n\r\n").encode()
    sent = head + b"--zz\r\n"
    s.sendall(sent)
    status_line, body = read_response(s)
    assert b" 413 " in status_line, status_line
    err = json.loads(body)["error"]
    assert err["code"] == "request_entity_too_large"
    assert err["message"] == f"The upload is larger than the limit of {CAP} bytes ({size} bytes)"
    s.close()
    wait_for_stat(media, RX_BYTES, rx + len(sent))
    assert media.backend_requests() == []


def test_chunked_upload_over_the_cap_is_cut_at_the_cap(media):
    """Without a Content-Length the upload streams through and is counted: exactly the cap passes
    (Envoy has read every byte of it and answered nothing), and the byte after it is refused with
    413 mid-upload, the message counting cap + 1 bytes. The filter only counts the pieces (it
    reads the body only until the `model` field), and Envoy streams them on."""
    media.clear_backend_requests()
    boundary = "cc"
    head = (f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    first = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nqai-listen\r\n"
             f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.wav\"\r\n\r\n").encode()

    def chunk(b):
        return f"{len(b):x}\r\n".encode() + b + b"\r\n"

    rx = stats_value(media, RX_BYTES)
    s = socket.create_connection(("127.0.0.1", media.gateway_port), timeout=30)
    # Blocking sends: a partial send is completed by sendall, never re-sent whole (which would
    # corrupt the chunked framing).
    s.sendall(head + chunk(first))
    wire, body = len(head) + len(chunk(first)), len(first)
    while body < CAP:
        piece = chunk(b"\x00" * min(1024 * 1024, CAP - body))
        s.sendall(piece)
        wire += len(piece)
        body += min(1024 * 1024, CAP - body)
    assert body == CAP
    wait_for_stat(media, RX_BYTES, rx + wire, timeout=60)
    s.setblocking(False)
    try:
        early = s.recv(65536)
    except BlockingIOError:
        early = None
    assert early is None, f"answered before the cap was passed: {early[:300]!r}"
    s.setblocking(True)
    s.settimeout(30)
    s.sendall(chunk(b"\x00"))
    status_line, raw = read_response(s)
    s.close()
    assert b" 413 " in status_line, status_line
    err = json.loads(raw)["error"]
    assert err["code"] == "request_entity_too_large"
    assert err["message"] == f"The upload is larger than the limit of {CAP} bytes ({CAP + 1} bytes)"
    assert media.backend_requests() == []  # the cut upload never completed upstream


@pytest.mark.parametrize("fmt,content_type,magic,length", [
    ("mp3", "audio/mpeg", b"\xff\xfb", 4170),   # MPEG-1 Layer III frames
    ("pcm", "audio/pcm", None, 8000),            # raw 16-bit samples, no header
    ("wav", "audio/wav", b"RIFF", 8044),
    ("flac", "audio/wav", b"RIFF", 8044),        # no flac encoder in the demo: WAV, labelled so
])
def test_demo_speech_bytes_match_their_content_type(media, fmt, content_type, magic, length):
    status, headers, raw = post(media, "/v1/audio/speech", {"model": "qai-voice", "input": "hi", "voice": "alloy",
                                                            "response_format": fmt})
    assert (status, headers["content-type"], len(raw)) == (200, content_type, length)
    if magic:
        assert raw.startswith(magic)
    else:
        assert not raw.startswith(b"RIFF")


def test_demo_media_urls_can_be_fetched(media):
    # response_format=url: the URL points at the backend that made it, which serves the file.
    status, _, raw = post(media, "/v1/images/generations", {"model": "qai-imagine-turbo", "prompt": "a",
                                                            "size": "256x256", "response_format": "url"})
    assert status == 200, raw
    url = json.loads(raw)["data"][0]["url"]
    assert url == f"{media.backend_url('demo_image')}/v1/files/demo.png"
    with urllib.request.urlopen(url, timeout=5) as r:
        assert (r.status, r.headers["content-type"], r.read()[:8]) == (200, "image/png", b"\x89PNG\r\n\x1a\n")
    status, _, raw = post(media, "/v1/videos/generations", {"model": "qai-motion", "prompt": "a", "duration": 2,
                                                            "size": "832x480"})
    assert status == 200, raw
    url = json.loads(raw)["data"][0]["url"]
    assert url == f"{media.backend_url('demo_video')}/v1/files/demo.mp4"
    with urllib.request.urlopen(url, timeout=5) as r:
        assert (r.status, r.headers["content-type"]) == (200, "video/mp4")
