"""Traces with the OpenTelemetry GenAI conventions (issue 19): real Envoy with the `tracing` block
of envoy/tracing-otlp.yaml exports spans over OTLP/gRPC to a real OTLP TraceService receiver
(grpcio + opentelemetry-proto) in this process; each span's attributes are checked exactly."""

import copy
import http.client as http_client
import json
import urllib.request
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from conftest import Http, _with_upstream_credential
from tollgate_harness import Stack

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "envoy" / "tracing-otlp.yaml"
ACTIVE = {"Authorization": "Bearer sk-demo-active"}


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Collects every exported span's string attributes, keyed by `tollgate.request_id`."""

    def __init__(self):
        self.spans = []
        self.raw = []
        self.lock = threading.Lock()

    def Export(self, request, context):
        with self.lock:
            self.raw.append(request.SerializeToString())
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        attrs = {a.key: a.value.string_value for a in span.attributes}
                        self.spans.append(attrs)
        return trace_service_pb2.ExportTraceServiceResponse()

    def span(self, request_id, timeout=15.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                for s in self.spans:
                    if s.get("tollgate.request_id") == request_id:
                        return s
            time.sleep(0.1)
        raise AssertionError(f"no span for {request_id}; got {self.spans}")


GEN_AI = [
    "gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.system", "gen_ai.request.model",
    "gen_ai.response.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "error.type",
    "tollgate.front", "tollgate.usage.estimated", "tollgate.credits", "tollgate.limit.outcome",
    "tollgate.request_id", "tollgate.account_id",
]


def ours(span):
    return {k: v for k, v in span.items() if k in GEN_AI}


def _example_filter_config():
    """The filter configuration of envoy/tracing-otlp.yaml (its `span_attributes` switch)."""
    from tollgate_harness import filter_config
    return filter_config(yaml.safe_load(EXAMPLE.read_text()))


def _traced_stack(span_attributes):
    receiver = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    example = yaml.safe_load(EXAMPLE.read_text())

    def patch(doc):
        # The example's tracing block, collector cluster and runtime, pointed at the receiver.
        ex_hcm = example["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["tracing"] = copy.deepcopy(ex_hcm["tracing"])
        hcm["request_id_extension"] = copy.deepcopy(ex_hcm["request_id_extension"])
        collector = copy.deepcopy(next(c for c in example["static_resources"]["clusters"] if c["name"] == "otel_collector"))
        sa = collector["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        sa["port_value"] = port
        doc["static_resources"]["clusters"].append(collector)
        doc["layered_runtime"] = copy.deepcopy(example["layered_runtime"])
        # One span is enough to send a batch here (the example batches 5).
        doc["layered_runtime"]["layers"][0]["static_layer"]["tracing.opentelemetry.min_flush_spans"] = 1
        return doc

    def patch_filter(cfg):
        cfg = _with_upstream_credential(cfg)
        cfg["span_attributes"] = span_attributes
        return cfg

    s = Stack(concurrency=2, patch_filter=patch_filter, patch_envoy=patch,
              extra_clusters=["demo_anthropic", "demo_gemini"])
    s.start()
    return s, Http(s.url), receiver, server


@pytest.fixture(scope="module")
def traced():
    # As the example configures it: the span attributes switched on.
    assert _example_filter_config()["span_attributes"] is True
    s, http, receiver, server = _traced_stack(True)
    yield s, http, receiver
    s.stop()
    server.stop(0)


def test_without_the_switch_spans_carry_no_attribute_of_tollgate():
    """`span_attributes` is off by default: the filter stores none of them (no hostcalls spent),
    and the span Envoy exports for a served request has none."""
    s, http, receiver, server = _traced_stack(False)
    try:
        status, headers, _ = http.json("POST", "/v1/chat/completions",
                                       {"model": "qai-flash", "messages": [{"role": "user", "content": "hi"}]},
                                       {**ACTIVE, "x-demo-usage-fixed": "11 7"})
        assert status == 200
        rid = headers["x-request-id"]
        assert s.billing_record(rid)["completion_tokens"] == 7
        deadline = time.time() + 15
        while time.time() < deadline:
            with receiver.lock:
                spans = list(receiver.spans)
            if spans:
                break
            time.sleep(0.1)
        assert len(spans) == 1, spans
        assert [k for k in spans[0] if k in GEN_AI] == [], spans[0]
    finally:
        s.stop()
        server.stop(0)


def test_span_of_a_chat_completion_carries_the_gen_ai_attributes(traced):
    stack, http, receiver = traced
    status, headers, body = http.json("POST", "/v1/chat/completions",
                                      {"model": "qai-flash", "messages": [{"role": "user", "content": "hi"}]},
                                      {**ACTIVE, "x-demo-usage-fixed": "11 7"})
    assert status == 200
    rid = headers["x-request-id"]
    rec = stack.billing_record(rid)
    assert ours(receiver.span(rid)) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "qai-flash",
        "gen_ai.response.model": "qai-flash",
        "gen_ai.usage.input_tokens": "11",
        "gen_ai.usage.output_tokens": "7",
        "tollgate.front": "openai",
        "tollgate.usage.estimated": "false",
        "tollgate.credits": str(rec["credits"]),
        "tollgate.limit.outcome": "admitted",
        "tollgate.request_id": rid,
        "tollgate.account_id": "acct-demo",
    }
    assert rec["prompt_tokens"] == 11 and rec["completion_tokens"] == 7


def test_span_of_a_stream_without_usage_carries_the_estimated_usage(traced):
    """Anthropic front, Gemini upstream, a stream that ends without usage: billed on an estimate."""
    stack, http, receiver = traced
    status, headers, _ = http.request("POST", "/v1/messages",
                                      {"model": "test-gemini", "max_tokens": 50, "stream": True,
                                       "messages": [{"role": "user", "content": "hello there"}]},
                                      {"x-api-key": "sk-demo-active", "anthropic-version": "2023-06-01",
                                       "x-demo-chunks": "6", "x-demo-no-usage": "1"})
    assert status == 200
    rid = headers["x-request-id"]
    rec = stack.billing_record(rid)
    assert rec["estimated"] is True
    assert ours(receiver.span(rid)) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.system": "gcp.gemini",
        "gen_ai.request.model": "test-gemini",
        "gen_ai.response.model": "gemini-demo",
        "gen_ai.usage.input_tokens": str(rec["prompt_tokens"]),
        "gen_ai.usage.output_tokens": str(rec["completion_tokens"]),
        "tollgate.front": "anthropic",
        "tollgate.usage.estimated": "true",
        "tollgate.credits": str(rec["credits"]),
        "tollgate.limit.outcome": "admitted",
        "tollgate.request_id": rid,
        "tollgate.account_id": "acct-demo",
    }
    assert rec["completion_tokens"] > 0


def test_span_of_a_rate_limited_request_names_the_limit(traced):
    stack, http, receiver = traced
    key = {"Authorization": "Bearer sk-demo-limited"}
    body = {"model": "qai-flash", "messages": [{"role": "user", "content": "hi"}]}
    statuses = []
    left = 60 - time.time() % 60  # the six inside one fixed minute window
    if left < 5:
        time.sleep(left + 0.2)
    for _ in range(6):  # acct-limited: 5 requests a minute
        status, headers, _ = http.request("POST", "/v1/chat/completions", body, key)
        statuses.append(status)
    assert statuses == [200] * 5 + [429]
    rid = headers["x-request-id"]
    # Refused from its headers (README, "Limits"): the body, and so the model, is never read.
    assert ours(receiver.span(rid)) == {
        "gen_ai.operation.name": "chat",
        "error.type": "rate_limit_exceeded",
        "tollgate.front": "openai",
        "tollgate.usage.estimated": "false",
        "tollgate.credits": "0.0",
        "tollgate.limit.outcome": "rate",
        "tollgate.request_id": rid,
        "tollgate.account_id": "acct-limited",
    }


def test_span_of_an_unknown_key_has_no_model_and_no_usage(traced):
    stack, http, receiver = traced
    status, headers, _ = http.request("POST", "/v1/chat/completions",
                                      {"model": "qai-flash", "messages": [{"role": "user", "content": "hi"}]},
                                      {"Authorization": "Bearer sk-nope"})
    assert status == 401
    rid = headers["x-request-id"]
    assert ours(receiver.span(rid)) == {
        "gen_ai.operation.name": "chat",
        "error.type": "unauthorized",
        "tollgate.front": "openai",
        "tollgate.usage.estimated": "false",
        "tollgate.credits": "0.0",
        "tollgate.limit.outcome": "not_checked",
        "tollgate.request_id": rid,
    }


def test_span_of_a_stream_cut_short_has_the_request_attributes_and_its_record_the_estimate(traced):
    """The upstream resets mid-stream: the filter sees no end of response, and Envoy finishes
    the span before the log phase, so the span has what was stored when the response started
    (who, which model, which provider) but no usage; the billing record (and the stats' cut-off
    count) has the estimate (README, "Traces")."""
    stack, http, receiver = traced
    body = {"model": "qai-flash", "stream": True, "messages": [{"role": "user", "content": "hello there"}]}
    req = urllib.request.Request(stack.url + "/v1/chat/completions", data=json.dumps(body).encode(), method="POST",
                                 headers={**ACTIVE, "Content-Type": "application/json",
                                          "x-demo-chunks": "6", "x-demo-cut-after": "3"})
    with urllib.request.urlopen(req, timeout=30) as r:
        rid = r.headers["x-request-id"]
        with pytest.raises(http_client.IncompleteRead):
            r.read()
    rec = stack.billing_record(rid)
    assert (rec["estimated"], rec["complete"]) == (True, False)
    span = receiver.span(rid)
    assert (span["response_flags"], ours(span)) == ("UPE", {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "qai-flash",
        "gen_ai.response.model": "qai-flash",
        "tollgate.front": "openai",
        "tollgate.request_id": rid,
        "tollgate.account_id": "acct-demo",
    })


def test_no_span_carries_a_query_key(traced):
    """A Gemini client's `?key=` never reaches an exported span (name, URL tag, any attribute)."""
    stack, http, receiver = traced
    status, headers, _ = http.request("POST", "/v1beta/models/qai-flash:generateContent?key=sk-demo-active&alt=json",
                                      {"contents": [{"parts": [{"text": "hi"}]}]})
    assert status == 200
    rid = headers["x-request-id"]
    span = receiver.span(rid)
    assert span["gen_ai.operation.name"] == "generate_content"
    # Envoy reads the path when it ends the span: the one the filter sent upstream.
    assert span["http.url"] == stack.url + "/v1/chat/completions"
    # Refused by the gateway itself: the path is the client's, with the key removed.
    status, headers, _ = http.request("GET", "/v1beta/nothing-here?alt=json&key=sk-demo-active")
    assert status == 404
    span = receiver.span(headers["x-request-id"])
    assert (span["http.url"], span["error.type"]) == (stack.url + "/v1beta/nothing-here?alt=json", "not_found")
    with receiver.lock:
        raw = list(receiver.raw)
    assert raw and not any(b"sk-demo-active" in r for r in raw)
