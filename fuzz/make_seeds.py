#!/usr/bin/env python3
"""Writes the fuzz seed corpora (fuzz/seeds/<target>/) from the stream fixtures in
core/tests/fixtures and a few representative requests and responses per dialect. The seeds are
committed; rerun this after changing the fixtures. libFuzzer's own finds go to fuzz/corpus/
(ignored by git)."""
import hashlib
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "core" / "tests" / "fixtures"
SEEDS = HERE / "seeds"
DIALECT = {"openai": 0, "anthropic": 1, "gemini": 2}

OPENAI_REQ = [
    {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    {"model": "m", "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 10,
     "temperature": 0.5, "stop": ["x"], "messages": [
         {"role": "system", "content": "be brief"},
         {"role": "user", "content": [{"type": "text", "text": "weather?"},
                                      {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
         {"role": "assistant", "content": None, "tool_calls": [
             {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
         {"role": "tool", "tool_call_id": "call_1", "content": "18C"}],
     "tools": [{"type": "function", "function": {"name": "get_weather", "description": "w",
                                                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
     "tool_choice": "auto"},
]
ANTHROPIC_REQ = [
    {"model": "ma", "max_tokens": 100, "messages": [{"role": "user", "content": "hello"}]},
    {"model": "ma", "max_tokens": 1024, "system": "You are terse.", "stream": True, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "picture?"},
                                     {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A cat."},
                                          {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18C"}]}],
     "tools": [{"name": "get_weather", "description": "w", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
     "tool_choice": {"type": "tool", "name": "get_weather"}, "stop_sequences": ["END"], "temperature": 0.5, "top_k": 40},
]
GEMINI_REQ = [
    {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]},
    {"systemInstruction": {"parts": [{"text": "be brief"}]},
     "contents": [{"role": "user", "parts": [{"text": "weather?"}, {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]},
                  {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
                  {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": "18C"}}}]}],
     "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}}]}],
     "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
     "generationConfig": {"maxOutputTokens": 100, "temperature": 0.3, "stopSequences": ["x"]}},
]
RESPONSES = {
    "openai": {"id": "chatcmpl-1", "object": "chat.completion", "model": "up-model", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}},
    "anthropic": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "content": [
        {"type": "text", "text": "Hi"}, {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 1}},
    "gemini": {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}, {"functionCall": {"name": "f", "args": {}}}]},
                               "finishReason": "STOP", "index": 0}],
               "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "thoughtsTokenCount": 1, "totalTokenCount": 8}},
}
CONFIG = {
    "defaults": {"owned_by": "x", "rpm": 10, "sandbox_daily_quota": 5, "default_max_tokens": 100},
    "cluster_header": "x-tollgate-cluster", "max_body_bytes": 1000,
    "clusters": [{"name": "o", "dialect": "openai", "api_key": "k", "headers": {"x-a": "b"}, "base_path": "/v1"},
                 {"name": "a", "dialect": "anthropic", "authority": "api.anthropic.com"}],
    "models": [{"id": "m", "type": "text", "cluster": "o", "upstream_model": "u", "sandbox": True,
                "price": {"prompt_per_1k": 0.1, "completion_per_1k": 0.2, "per_image": 1, "per_second": 1}}],
    "accounts": [{"id": "acct", "status": "active", "rpm": 5, "spend_cap": 1.5}],
    "keys": [{"id": "k1", "account": "acct", "sha256": "ab" * 32, "spend_cap": 1, "sandbox_daily_quota": 3}],
}


def write(target, data: bytes):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def j(v) -> bytes:
    return json.dumps(v).encode()


def main():
    shutil.rmtree(SEEDS, ignore_errors=True)
    streams = {p.name: p.read_bytes() for p in sorted(FIXTURES.glob("*.sse"))}
    for name, s in streams.items():
        up = DIALECT[name.split("_")[0]]
        write("sse_framer", bytes([0]) + s)
        write("sse_framer", bytes([3, 7, 1, 13]) + s.replace(b"\n", b"\r\n"))
        for front in range(3):
            write("stream", bytes([front, up, 0, 2, 5, 11]) + s)
            write("stream", bytes([front, up, 3, 0]) + s)
    for r in OPENAI_REQ:
        write("request_openai", j(r))
        write("chat_differential", j(r))
    # Bodies a lenient upstream reads otherwise (the guard refuses them): starting points for
    # the fuzzer's mutations.
    for raw in [b'{"model":"m","Model":"x","messages":[{"role":"user","content":"hi"}]}',
                b'{"model":"m","n":1,"N":4,"messages":[{"role":"user","content":"hi"}]}',
                b'{"model":"m","max_tokens":5,"max_tokens":9,"messages":[{"role":"user","content":"hi"}]}',
                b'{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}']:
        write("chat_differential", raw)
        for n in range(3):
            write("response", bytes([n, 0]) + j(RESPONSES["openai"]))
    for r in ANTHROPIC_REQ:
        write("request_anthropic", j(r))
    for r in GEMINI_REQ:
        write("request_gemini", bytes([0]) + j(r))
        write("request_gemini", bytes([1]) + j(r))
    for name, resp in RESPONSES.items():
        for front in range(3):
            write("response", bytes([front, DIALECT[name]]) + j(resp))
        write("usage", j(resp))
    write("usage", j({"usage": {"prompt_tokens": 1, "completion_tokens": 2,
                                "prompt_tokens_details": {"cached_tokens": 1},
                                "completion_tokens_details": {"reasoning_tokens": 1}}}))
    write("config", j(CONFIG))
    write("config", b"{}")
    for k in [b"Bearer sk-a\xffsk-a\xff\xfe\xff\xfe", b"\xfe\xffsk-b\xffsk-b\xffsk-b", b"Basic x\xff\xfe\xff\xfe\xff\xfe",
              b"Bearer a\xffb\xff\xfe\xff\xfe", ("ab" * 32).encode()]:
        write("keys", k)
    # exchange: [8 control bytes][path]\n--\n[request body]\n--\n[response body]
    paths = {0: b"/v1/chat/completions", 1: b"/v1/messages", 2: b"/v1beta/models/%s:streamGenerateContent?alt=sse"}
    models = {0: "m", 1: "ma", 2: "mg"}
    reqs = {0: OPENAI_REQ[1], 1: ANTHROPIC_REQ[1], 2: GEMINI_REQ[1]}
    for front in range(3):
        for up in range(3):
            r = dict(reqs[front])
            if front != 2:
                r["model"] = models[up]
            path = paths[front] % models[up].encode() if front == 2 else paths[front]
            upname = ["openai", "anthropic", "gemini"][up]
            stream = streams[f"{upname}_text.sse"]
            write("exchange", bytes([0, 1, 0, 1, 40, 0, 1, 2]) + path + b"\n--\n" + j(r) + b"\n--\n" + stream)
            write("exchange", bytes([0, 2, 0, 0, 0, 2, 1, 2]) + path + b"\n--\n" + j(r) + b"\n--\n" + j(RESPONSES[upname]))
    write("exchange", bytes([0, 1, 8, 0, 3, 0, 0, 0]) + b"/v1/chat/completions\n--\n" + j(OPENAI_REQ[0]) + b"\n--\n{\"error\":{\"message\":\"boom\"}}")
    write("exchange", bytes([1, 3, 0, 0, 0, 0, 0, 0]) + b"/v1beta/models?key=sk-a\n--\n\n--\n")
    write("exchange", bytes([0, 5, 0, 0, 0, 6, 0, 0]) + b"/v1/images/generations\n--\n{\"model\":\"img\",\"n\":2}\n--\n{}")
    form = (b"--BB\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nlisten\r\n"
            b"--BB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF....WAVE\r\n--BB--\r\n")
    write("exchange", bytes([0, 1, 0, 0, 7, 6, 0, 0]) + b"/v1/audio/transcriptions\n--\n" + form + b"\n--\n{\"text\":\"hi\",\"usage\":{\"seconds\":2}}")
    write("exchange", bytes([0, 1, 0, 0, 0, 0, 0, 0]) + b"/v1/audio/speech\n--\n{\"model\":\"voice\",\"input\":\"hello\"}\n--\nRIFF")
    # The spend-capped key (ctl[1] = 5) on the priced model `m` from each front, three times on
    # one store (ctl[5] = 4): reservations are made, settled, and the cap engages.
    for front in range(3):
        r = dict(reqs[front])
        if front != 2:
            r["model"] = "m"
        path = paths[front] % b"m" if front == 2 else paths[front]
        write("exchange", bytes([0, 5, 0, 1, 40, 4, 1, 2]) + path + b"\n--\n" + j(r) + b"\n--\n" + streams["openai_text.sse"])
        write("exchange", bytes([0, 5, 0, 0, 0, 4, 1, 2]) + path + b"\n--\n" + j(r) + b"\n--\n" + j(RESPONSES["openai"]))
        # An upstream reporting far more usage than the estimate: the first call overshoots the
        # cap (as documented), the next ones must be refused.
        big = {**RESPONSES["openai"], "usage": {"prompt_tokens": 5000, "completion_tokens": 5000, "total_tokens": 10000}}
        write("exchange", bytes([0, 5, 0, 0, 0, 4, 1, 2]) + path + b"\n--\n" + j(r) + b"\n--\n" + j(big))


if __name__ == "__main__":
    main()
