//! The bench's `calls` filter: the floor filter's work plus the host calls Tollgate makes on a
//! non-streamed OpenAI chat request (the `glue_hostcalls` table: 2 header reads, 9 header
//! writes, 2 buffer reads, 2 shared-data reads and 1 write, 4 stat increments, 1 property, 4
//! clock reads), each with a fixed value and no logic behind it. Envoy's instructions a request
//! with it, less the floor's, are what those crossings cost: the part of Tollgate's cost over the
//! floor that its job needs whatever its own code does. Measured with Envoy under callgrind
//! (`tests/bench/envoy_callgrind.py calls`); not one of `make bench`'s configurations.

use std::hint::black_box;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};

const ROUTE_HEADER: &str = "x-tollgate-cluster";
const CLUSTER: &str = "demo_text";
const SHARED_KEY: &str = "bench.calls.window";

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { stats: [0; 4] }) });
}}

struct Root {
    stats: [u32; 4],
}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        for (i, name) in ["bench_calls_requests", "bench_calls_prompt", "bench_calls_completion", "bench_calls_spent"]
            .iter()
            .enumerate()
        {
            if let (Some(slot), Ok(id)) = (self.stats.get_mut(i), hostcalls::define_metric(MetricType::Counter, name)) {
                *slot = id;
            }
        }
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Calls { streamed: false, stats: self.stats }))
    }
}

struct Calls {
    streamed: bool,
    stats: [u32; 4],
}

fn now() {
    black_box(hostcalls::get_current_time().ok());
}

impl Context for Calls {}

impl HttpContext for Calls {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        black_box(self.get_http_request_headers());
        now();
        if end_of_stream {
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
        now();
        // The rate window: read, read again for the account's second window, written back.
        let (_, cas) = hostcalls::get_shared_data(SHARED_KEY).unwrap_or((None, None));
        black_box(hostcalls::get_shared_data(SHARED_KEY).ok());
        black_box(hostcalls::set_shared_data(SHARED_KEY, Some(b"1700000000:1"), cas).ok());
        self.set_http_request_header("x-request-id", Some("0123456789abcdef0123456789abcdef"));
        self.set_http_request_header("authorization", None);
        self.set_http_request_header(ROUTE_HEADER, Some(CLUSTER));
        self.set_http_request_header("authorization", Some("Bearer sk-cluster-credential"));
        self.set_http_request_header("content-length", Some(&body_size.to_string()));
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.streamed =
            self.get_http_response_header("content-type").is_some_and(|v| v.starts_with("text/event-stream"));
        now();
        self.set_http_response_header("x-ratelimit-limit-requests", Some("1000"));
        self.set_http_response_header("x-ratelimit-remaining-requests", Some("999"));
        self.set_http_response_header("x-ratelimit-reset-requests", Some("60s"));
        self.set_http_response_header("content-length", None);
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

    fn on_log(&mut self) {
        now();
        for id in self.stats {
            black_box(hostcalls::increment_metric(id, 1).ok());
        }
        black_box(
            hostcalls::set_property(
                vec!["tollgate_record"],
                Some(br#"{"request_id":"0123456789abcdef0123456789abcdef","model":"m","prompt_tokens":12}"#),
            )
            .ok(),
        );
    }
}
