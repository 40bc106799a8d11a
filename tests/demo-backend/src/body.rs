//! Response body type: either a complete buffer (sent with Content-Length) or
//! a channel-backed incremental stream (sent chunked, one frame per event).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::Value;
use tokio::sync::mpsc;

pub type Resp = Response<RespBody>;

type Item = Result<Bytes, io::Error>;

pub enum RespBody {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Item>),
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            RespBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            RespBody::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, RespBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            RespBody::Full(None) => SizeHint::with_exact(0),
            RespBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// A complete response with the given content type.
pub fn full(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let body: Bytes = body.into();
    let body = if body.is_empty() { None } else { Some(body) };
    let mut r = Response::new(RespBody::Full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A complete JSON response.
pub fn json(status: StatusCode, v: &Value) -> Resp {
    full(status, "application/json", serde_json::to_vec(v).unwrap_or_default())
}

/// `x-demo-usage: <prompt> <completion>`: the usage this response reports (or would, under
/// `x-demo-no-usage` / `x-demo-cut-after`), so tests can compare the gateway's billing with it.
pub fn with_usage(mut r: Resp, prompt: u64, completion: u64) -> Resp {
    if let Ok(v) = HeaderValue::from_str(&format!("{prompt} {completion}")) {
        r.headers_mut().insert("x-demo-usage", v);
    }
    r
}

/// Producer side of a streamed body.
pub struct EventSink {
    tx: mpsc::Sender<Item>,
    delay: Duration,
    sent_any: bool,
}

impl EventSink {
    /// Send one event as its own body frame. Sleeps `x-demo-chunk-delay-ms`
    /// between events. Returns false once the client has gone away.
    pub async fn send(&mut self, b: impl Into<Bytes>) -> bool {
        if self.sent_any && !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.sent_any = true;
        self.tx.send(Ok(b.into())).await.is_ok()
    }

    /// Abort the stream abruptly (x-demo-cut-after): the body ends with an
    /// error, so hyper drops the connection without the chunked terminator.
    pub async fn abort(self) {
        // Let hyper drain and flush what was already sent, so the client
        // really receives the events before the cut.
        for _ in 0..1000 {
            if self.tx.is_closed() || self.tx.capacity() == self.tx.max_capacity() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = self
            .tx
            .send(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "demo backend: stream cut (x-demo-cut-after)")))
            .await;
    }
}

/// A streamed 200 response; `producer` runs on its own task and feeds it.
pub fn stream<F, Fut>(content_type: &'static str, chunk_delay: Duration, producer: F) -> Resp
where
    F: FnOnce(EventSink) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(producer(EventSink { tx, delay: chunk_delay, sent_any: false }));
    let mut r = Response::new(RespBody::Stream(rx));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
