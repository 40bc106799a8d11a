//! The bench's `noop` configuration: a proxy-wasm filter built like Tollgate's (same SDK,
//! toolchain and release profile) that continues at every phase. What Envoy's wasm machinery
//! costs a request before a filter does anything.

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_http_context(|_, _| -> Box<dyn HttpContext> { Box::new(Noop) });
}}

struct Noop;

impl Context for Noop {}

// Every phase keeps the SDK's default: `Action::Continue`.
impl HttpContext for Noop {}
