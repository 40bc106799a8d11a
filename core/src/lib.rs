//! Tollgate's core: everything the gateway decides, with no host in sight. Plain values and bytes
//! in, decisions out, tested natively. The proxy-wasm glue (the `tollgate-filter` crate) is the
//! only code that talks to Envoy; this crate does not depend on proxy-wasm at all.

mod ascii;
pub mod config;
pub mod dialect;
pub mod embeddings;
pub mod endpoints;
pub mod errors;
pub mod exchange;
pub mod headers;
pub mod keys;
pub mod limits;
pub mod live;
pub mod media;
pub mod metrics;
pub mod number;
pub mod pricing;
pub mod reply;
pub mod router;
pub mod routing;
mod sort;
pub mod sse;
pub mod trace;
pub mod translate;
pub mod usage;
