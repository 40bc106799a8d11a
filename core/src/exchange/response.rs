//! The response path: how the body is handled (passed, buffered and rewritten, translated chunk
//! by chunk), upstream errors answered in the caller's dialect, and oversized responses refused.

use super::redact::{error_finder, redact_bytes, redact_text, upstream_message};
use super::{remove, set, ChunkAction, Exchange, HeaderEdit, LocalReply};
use crate::config::Config;
use crate::embeddings;
use crate::endpoints::Endpoint;
use crate::errors::{Code, GatewayError};
use crate::media;
use crate::sse::{ChunkOut, Framer};
use crate::translate::{self, StreamPipe};
use crate::usage;

/// How the response body is handled, decided at response headers.
#[derive(Debug)]
pub(super) enum ResponseMode {
    /// Not ours to touch (local replies, pass-through endpoints).
    Pass,
    /// Buffer the JSON body, rewrite at the end.
    BufferJson,
    /// Buffer the upstream's error body and answer with our own error at the end.
    UpstreamError { status: u16, code: Code },
    /// A buffered chat response grew past `max_body_bytes`: refused with our 502, nothing of it
    /// reaches the client; later pieces are dropped.
    Refused,
    /// Translate SSE chunk by chunk (`out`: the output buffer, kept from chunk to chunk).
    Stream { framer: Framer, pipe: Box<StreamPipe>, out: Vec<u8> },
}

impl Exchange {
    /// Response headers: choose how to handle the body, and fix status and headers now (they
    /// cannot change once the body flows).
    pub fn on_response_headers(&mut self, status: u16, content_type: Option<&str>) -> Vec<HeaderEdit> {
        if self.local_reply || self.model.is_none() {
            self.mode = ResponseMode::Pass;
            return Vec::new();
        }
        let mut edits: Vec<HeaderEdit> =
            self.rate_headers().into_iter().map(|(k, v)| HeaderEdit::Set(k.into(), v.into())).collect();
        edits.extend(self.served_model_header());
        edits.extend(self.response_edits(status, content_type));
        edits
    }

    fn response_edits(&mut self, status: u16, content_type: Option<&str>) -> Vec<HeaderEdit> {
        self.end_attempt(status, self.now_ms);
        self.status = status;
        if let Some(code) = upstream_failure(status) {
            self.status = code.0;
            self.error = Some(code.1);
            self.mode = ResponseMode::UpstreamError { status, code: code.1 };
            return vec![
                set(":status", code.0.to_string()),
                set("content-type", "application/json"),
                remove("content-length"),
                remove("content-encoding"),
                // As on every gateway error (README, "Errors"): not the upstream's own advice.
                set("x-should-retry", if code.1.retryable() { "true" } else { "false" }),
            ];
        }
        let is_json = content_type.map(|c| c.contains("json")).unwrap_or(false);
        if !self.endpoint.is_chat() {
            // Media bodies pass untouched (images can be megabytes of base64); a transcription's
            // small JSON is read for the seconds it bills.
            if matches!(self.endpoint, Endpoint::GeminiEmbed { .. }) && is_json {
                // Rewritten into Gemini's shape at the end: its length changes.
                self.mode = ResponseMode::BufferJson;
                return vec![remove("content-length")];
            }
            self.mode = if matches!(self.endpoint, Endpoint::Transcriptions | Endpoint::Embeddings) && is_json {
                ResponseMode::BufferJson
            } else {
                ResponseMode::Pass
            };
            return Vec::new();
        }
        // `text/event-stream` in any case, compared in place (no lowercased copy).
        let is_sse = content_type.is_some_and(|c| {
            c.trim_start().as_bytes().get(..17).is_some_and(|p| p.eq_ignore_ascii_case(b"text/event-stream"))
        });
        if is_sse {
            let echo = self.echo.take();
            let pipe = StreamPipe::priced_echoed(
                self.front,
                self.upstream,
                self.shown_model(),
                self.upstream_model.as_deref().unwrap_or(""),
                self.wants_usage,
                self.price,
                self.now_ms / 1000,
                echo,
            )
            .with_prompt_estimate(self.prompt_estimate);
            self.mode = ResponseMode::Stream { framer: Framer::default(), pipe: Box::new(pipe), out: Vec::new() };
            vec![remove("content-length")]
        } else if content_type.map(|c| c.contains("json")).unwrap_or(false) {
            self.mode = ResponseMode::BufferJson;
            vec![remove("content-length")]
        } else {
            self.mode = ResponseMode::Pass;
            Vec::new()
        }
    }

    /// A response body chunk. `whole` is the full buffered body when `end_of_stream` in a
    /// buffering mode; otherwise the current chunk.
    pub fn on_response_chunk(&mut self, chunk: &[u8], end_of_stream: bool, max_body: usize) -> ChunkAction {
        self.on_response_chunk_head(chunk, end_of_stream, max_body, usize::MAX).0
    }

    /// As `on_response_chunk`, where a stream chunk's `Replace` may leave out the chunk's first
    /// bytes the client gets unchanged, when they are at least `head_min`: `(action, head)`, the
    /// client's bytes being `chunk[..head]` and then the replacement's (the host can keep or
    /// re-read them without a copy here). `head` is 0 for every other action.
    pub fn on_response_chunk_head(
        &mut self,
        chunk: &[u8],
        end_of_stream: bool,
        max_body: usize,
        head_min: usize,
    ) -> (ChunkAction, usize) {
        if end_of_stream {
            self.response_done = true;
        }
        let mut head = 0;
        let action = self.response_chunk(chunk, end_of_stream, max_body, head_min, &mut head);
        if self.content.is_some() {
            match &action {
                ChunkAction::Pass => self.capture_response(chunk),
                ChunkAction::Replace(b) => {
                    self.capture_response(chunk.get(..head).unwrap_or(&[]));
                    self.capture_response(b);
                }
                ChunkAction::Buffer => {}
            }
        }
        (action, head)
    }

    /// The action for a chunk; a stream's `Replace` that leaves out the chunk's first bytes
    /// sets `head` to their count.
    fn response_chunk(
        &mut self,
        chunk: &[u8],
        end_of_stream: bool,
        max_body: usize,
        head_min: usize,
        head: &mut usize,
    ) -> ChunkAction {
        match &mut self.mode {
            ResponseMode::Pass => ChunkAction::Pass,
            ResponseMode::Refused => ChunkAction::Replace(Vec::new()),
            ResponseMode::BufferJson => {
                if !end_of_stream {
                    self.buffered = self.buffered.saturating_add(chunk.len());
                    return self.over_cap(self.buffered, max_body, false).unwrap_or(ChunkAction::Buffer);
                }
                if let Some(a) = self.over_cap(chunk.len(), max_body, true) {
                    return a;
                }
                if self.endpoint == Endpoint::Transcriptions {
                    match media::transcription_seconds(chunk) {
                        Some(s) => {
                            self.units = Some(s);
                            self.units_estimated = false;
                        }
                        None => self.units_estimated = true,
                    }
                    return ChunkAction::Pass;
                }
                if self.endpoint == Endpoint::Embeddings {
                    // Passed as the upstream sent it; its usage is what is billed.
                    self.usage = embeddings::response_usage(chunk);
                    return ChunkAction::Pass;
                }
                if let Endpoint::GeminiEmbed { batch, .. } = self.endpoint {
                    self.usage = embeddings::response_usage(chunk);
                    return match embeddings::to_gemini(chunk, batch) {
                        Some(b) => ChunkAction::Replace(b),
                        None => {
                            let e = GatewayError::new(
                                Code::UpstreamError,
                                "The embeddings service sent an invalid response",
                            );
                            self.status = e.status();
                            self.error = Some(e.code);
                            self.status_override = Some(e.status());
                            ChunkAction::Replace(e.body(self.front))
                        }
                    };
                }
                let translated = translate::response_echoed(
                    self.front,
                    self.upstream,
                    chunk,
                    self.shown_model(),
                    self.upstream_model.as_deref().unwrap_or(""),
                    self.price.as_ref(),
                    self.now_ms / 1000,
                    self.echo.as_deref(),
                );
                let (out, usage) = match translated {
                    Ok(x) => x,
                    Err(mut e) => {
                        // Not a response of the upstream's dialect: our 502, with the reason
                        // (credentials redacted), instead of the body passed on unbilled.
                        e.message = redact_text(&e.message, &self.redact);
                        self.status = e.status();
                        self.error = Some(e.code);
                        self.status_override = Some(e.status());
                        return ChunkAction::Replace(e.body(self.front));
                    }
                };
                if usage.is_none() {
                    if out.is_none() && serde_json::from_slice::<serde::de::IgnoredAny>(chunk).is_err() {
                        // Not JSON at all: the client gets our 502 in its dialect, not the garbage.
                        let e = GatewayError::new(
                            Code::UpstreamError,
                            "The generation service sent an invalid response (not JSON)",
                        );
                        self.status = e.status();
                        self.error = Some(e.code);
                        self.status_override = Some(e.status());
                        return ChunkAction::Replace(e.body(self.front));
                    }
                    self.text_bytes = usage::text_len_hint(chunk);
                }
                self.usage = usage;
                match out {
                    Some(b) => ChunkAction::Replace(b),
                    None => ChunkAction::Pass,
                }
            }
            ResponseMode::UpstreamError { status, code } => {
                if !end_of_stream {
                    return ChunkAction::Buffer;
                }
                let e = upstream_error(*status, *code, chunk, &self.redact);
                ChunkAction::Replace(e.body(self.front))
            }
            ResponseMode::Stream { framer, pipe, out } => {
                // Each event is handled as the framer finds it, borrowed from the chunk; the
                // output stays a view of the chunk while the events pass unchanged.
                let mut o = ChunkOut::with_head(chunk, out, head_min);
                let pushed = framer.push_each(chunk, |ev| pipe.on_event_out(ev, &mut o));
                if end_of_stream {
                    framer.finish_each(|ev| pipe.on_event_out(ev, &mut o));
                }
                if pushed.is_err() {
                    pipe.error("The upstream sent an oversized stream event", o.buf());
                }
                if end_of_stream {
                    pipe.finish_out(&mut o);
                }
                if let Some(u) = pipe.usage() {
                    self.usage = Some(u);
                }
                // Upstream error text relayed in an error event never carries the cluster's
                // credentials (checked only when the output mentions an error).
                if !self.redact.is_empty() && o.contains(error_finder()) {
                    redact_bytes(o.join(), &self.redact);
                }
                // Byte for byte what came in (whole events that pass unchanged): let the chunk
                // through rather than replace it with a copy of itself.
                if o.is_chunk() {
                    return ChunkAction::Pass;
                }
                o.buf();
                *head = o.head();
                ChunkAction::Replace(std::mem::take(out))
            }
        }
    }

    /// Gives back the bytes of a `ChunkAction::Replace` once the host has copied them: a stream
    /// writes its next chunks into the same memory rather than a new buffer each time (kept up
    /// to `KEEP_OUTPUT` bytes of capacity).
    pub fn recycle_output(&mut self, mut buf: Vec<u8>) {
        const KEEP_OUTPUT: usize = 256 * 1024;
        if let ResponseMode::Stream { out, .. } = &mut self.mode {
            if out.capacity() == 0 && buf.capacity() <= KEEP_OUTPUT {
                buf.clear();
                *out = buf;
            }
        }
    }

    /// A non-final piece of a buffered response, when the host keeps the whole body so far and
    /// hands over only its size (`total`): counted, not copied. `Buffer` until the end, unless it
    /// is past `max_body` (see `over_cap`).
    pub fn on_response_buffered(&mut self, total: usize, max_body: usize) -> ChunkAction {
        match self.mode {
            ResponseMode::BufferJson => {
                self.buffered = total;
                self.over_cap(total, max_body, false).unwrap_or(ChunkAction::Buffer)
            }
            ResponseMode::Refused => ChunkAction::Replace(Vec::new()),
            _ => ChunkAction::Buffer,
        }
    }

    /// A buffered response of `total` bytes past `max_body` is never half-passed. A chat
    /// response (its headers are held) is refused: 502 `upstream_error` in the caller's dialect,
    /// none of the upstream's bytes reach the client (mid-body the glue sends it as a local
    /// reply, `take_response_reply`; at the end it replaces the body), and the record bills an
    /// estimate (see `billed_usage`). A transcription's JSON (passed untouched anyway) is let
    /// through whole and billed on the upload-size estimate, marked as such.
    fn over_cap(&mut self, total: usize, max_body: usize, end_of_stream: bool) -> Option<ChunkAction> {
        if total <= max_body {
            return None;
        }
        if !self.endpoint.is_chat() {
            self.mode = ResponseMode::Pass;
            self.units_estimated = true;
            return Some(ChunkAction::Pass);
        }
        let e = GatewayError::new(
            Code::UpstreamError,
            format!("The generation service's response is larger than {max_body} bytes; ask for a shorter completion (max_tokens)"),
        );
        self.status = e.status();
        self.error = Some(e.code);
        self.cut_bytes = Some(max_body as u64);
        self.mode = ResponseMode::Refused;
        if end_of_stream {
            self.status_override = Some(e.status());
        } else {
            let mut r = e.reply(self.front);
            // A retry would be generated, refused and billed again: SDKs must not retry it.
            no_retry(&mut r);
            r.headers.extend(self.rate_headers());
            self.response_reply = Some(r);
        }
        Some(ChunkAction::Replace(e.body(self.front)))
    }

    /// Whether the glue should hold the response headers until the body is read: a buffered chat
    /// response, whose status becomes 502 if the upstream's body turns out not to be JSON.
    pub fn hold_response_headers(&self) -> bool {
        matches!(self.mode, ResponseMode::BufferJson) && self.endpoint.is_chat()
    }

    /// Whether response pieces are held until the end of the body (a buffered JSON response or an
    /// upstream error): the glue then counts them (`on_response_buffered`) instead of copying them.
    pub fn buffers_response(&self) -> bool {
        matches!(self.mode, ResponseMode::BufferJson | ResponseMode::UpstreamError { .. } | ResponseMode::Refused)
    }

    /// An upstream error whose response has no body (its headers ended the stream, as Envoy's
    /// own 503 for a cluster it does not have): the error reply in the caller's dialect, with the
    /// status already chosen, since there is no body phase to write it in. `details` is Envoy's
    /// `response.code_details`; `cluster_not_found` names the misconfiguration.
    pub fn bodyless_error_reply(&self, cfg: &Config, details: Option<&str>) -> Option<LocalReply> {
        let ResponseMode::UpstreamError { status, code } = self.mode else { return None };
        let missing = self.cluster.and_then(|c| cfg.clusters.get(c)).filter(|_| details == Some("cluster_not_found"));
        let e = match missing {
            Some(c) => GatewayError::new(
                Code::UpstreamError,
                format!("The gateway is misconfigured: its cluster '{}' is not defined in Envoy (clusters[].name must name an Envoy cluster)", c.name),
            ),
            None => upstream_error(status, code, b"", &self.redact),
        };
        let mut r = e.reply(self.front);
        if missing.is_some() {
            // A retry meets the same configuration.
            no_retry(&mut r);
        }
        r.headers.extend(self.rate_headers());
        Some(r)
    }

    /// A reply to send from the response path instead of the upstream's response, once (a
    /// buffered chat response over `max_body_bytes`; its headers are still held).
    pub fn take_response_reply(&mut self) -> Option<LocalReply> {
        self.response_reply.take()
    }

    /// Whether the response was refused as larger than `max_body_bytes` (no retry should follow).
    pub fn refused_oversized(&self) -> bool {
        self.cut_bytes.is_some()
    }

    /// The status the held response headers must get, once.
    pub fn take_status_override(&mut self) -> Option<u16> {
        self.status_override.take()
    }
}

/// Upstream statuses the gateway does not pass through: (status to send, code).
fn upstream_failure(status: u16) -> Option<(u16, Code)> {
    match status {
        200..=399 => None,
        400 | 422 => Some((400, Code::BadRequest)),
        413 => Some((413, Code::RequestTooLarge)),
        429 => Some((429, Code::RateLimitExceeded)),
        _ => Some((502, Code::UpstreamError)),
    }
}

/// Our error for an upstream failure, carrying the upstream's own message with the cluster's
/// credentials (`redact`) replaced by `[redacted]`. An upstream 401/403 refused the gateway's own
/// credential: its body (which may quote that credential) is never relayed.
fn upstream_error(status: u16, code: Code, body: &[u8], redact: &[String]) -> GatewayError {
    if status == 401 || status == 403 {
        return GatewayError::new(
            Code::UpstreamError,
            format!("The generation service refused the gateway's credential (upstream status {status}); the gateway's upstream configuration must be fixed"),
        );
    }
    let detail = upstream_message(body, redact);
    let msg = match code {
        Code::UpstreamError => format!("The generation service failed (upstream status {status}): {detail}"),
        _ => detail,
    };
    let mut e = GatewayError::new(code, msg);
    if code == Code::RateLimitExceeded {
        e.message = format!("The generation service is rate limited: {}", e.message);
    }
    e
}

/// Tells the SDKs not to retry a reply whose error would otherwise be retryable.
fn no_retry(r: &mut LocalReply) {
    for (k, v) in r.headers.iter_mut() {
        if k == "x-should-retry" {
            *v = "false".to_string();
        }
    }
}
