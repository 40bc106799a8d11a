//! Tollgate: an LLM API gateway as a proxy-wasm filter for Envoy.
//!
//! Everything but `glue` is pure: plain values and bytes in, decisions out, tested natively.

pub mod config;
pub mod dialect;
pub mod endpoints;
pub mod errors;
pub mod headers;
pub mod exchange;
pub mod keys;
pub mod limits;
pub mod media;
pub mod metrics;
pub mod routing;
pub mod sse;
pub mod trace;
pub mod translate;
pub mod usage;

mod glue;
