"""A long OpenAI stream whose events reach Envoy a few large reads at a time, for a client that
did not ask for usage: the read holding the usage event is rewritten without it. With many
unchanged events before that one, the glue writes them back from the chunk it read and appends
the rest (two writes, README "A rewritten stream chunk"): the client must get exactly the
upstream's events but the usage one, in order, and the record the upstream's usage."""
import json
import urllib.request

N = 500
KEY = "sk-demo-active"


def stream(stack, include_usage):
    body = {"model": "qai-flash", "messages": [{"role": "user", "content": "x"}], "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    headers = {
        "content-type": "application/json",
        "authorization": f"Bearer {KEY}",
        "x-demo-chunks": str(N),
        "x-demo-usage-fixed": f"9 {N}",
    }
    req = urllib.request.Request(stack.url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.headers["x-request-id"], r.read()


def events(body):
    """The SSE events of `body`: each must be one `data: ` line and its blank line."""
    assert body.endswith(b"\n\n")
    out = body[:-2].split(b"\n\n")
    assert all(e.startswith(b"data: ") and b"\n" not in e for e in out)
    return [e[len(b"data: "):] for e in out]


def without_ids(ev):
    """An event with the fields that differ between two requests (id, created) left out."""
    if ev == b"[DONE]":
        return ev
    v = json.loads(ev)
    v.pop("id")
    v.pop("created")
    return json.dumps(v)


def test_a_long_stream_loses_its_usage_event_and_nothing_else(stack):
    status, rid, body = stream(stack, include_usage=False)
    assert status == 200
    status2, _, body_usage = stream(stack, include_usage=True)
    assert status2 == 200
    got, asked = events(body), events(body_usage)
    # The role event, N texts, the finish event, the usage event (when asked for), [DONE].
    assert len(asked) == N + 4
    assert len(got) == N + 3
    assert asked[-2].find(b'"usage"') > 0 and json.loads(asked[-2])["choices"] == []
    assert b'"usage"' not in body
    assert [without_ids(e) for e in got] == [without_ids(e) for e in asked[:-2] + asked[-1:]]
    texts = [json.loads(e)["choices"][0]["delta"].get("content") for e in got[1:N + 1]]
    assert texts == [f"tok{i} " for i in range(N)]
    assert got[-1] == b"[DONE]"
    rec = stack.billing_record(rid)
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (9, N)
    assert rec["estimated"] is False and rec["complete"] is True
