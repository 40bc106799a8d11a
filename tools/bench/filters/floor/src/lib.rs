//! The bench's `floor` configuration: the part of Tollgate's work that any proxy-wasm filter
//! routing by the request body must do, and nothing else. It holds the request headers until the
//! whole body has arrived, reads the body once, sets one routing header (the cluster Envoy's
//! route picks with `cluster_header`) and continues. It reads a non-streamed response body once
//! at its end, and each chunk of a streamed (`text/event-stream`) response as it passes.
//! Built like Tollgate's filter (same SDK, toolchain and release profile).

use std::hint::black_box;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel};

/// The request header the bench's route reads the cluster from, and the cluster it names.
const ROUTE_HEADER: &str = "x-tollgate-cluster";
const CLUSTER: &str = "demo_text";

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_http_context(|_, _| -> Box<dyn HttpContext> { Box::new(Floor { streamed: false }) });
}}

struct Floor {
    streamed: bool,
}

impl Context for Floor {}

impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            // No body to wait for: route now.
            self.set_http_request_header(ROUTE_HEADER, Some(CLUSTER));
            return Action::Continue;
        }
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        black_box(self.get_http_request_body(0, body_size));
        self.set_http_request_header(ROUTE_HEADER, Some(CLUSTER));
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.streamed =
            self.get_http_response_header("content-type").is_some_and(|v| v.starts_with("text/event-stream"));
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.streamed {
            black_box(self.get_http_response_body(0, body_size));
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        black_box(self.get_http_response_body(0, body_size));
        Action::Continue
    }
}
