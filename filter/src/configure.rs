//! Configuration loading (`on_configure`), inline or through extension config discovery (ECDS).
//!
//! An update reuses the running VMs (`vm_id`, the VM configuration and the code unchanged) and
//! configures a new root context in each, so shared data (the limits' counters) carries over.
//! Loading is idempotent: Envoy configures each document on a throwaway VM first, then on every
//! VM, and each call builds the same `Config` and counts the document once (`tollgate_core::live`).
//! A refused document returns `false`: Envoy then refuses the whole update (an ECDS update is
//! rejected, `extension_config_discovery.http_filter.<name>.update_rejected`) and keeps the
//! previous configuration serving; at start, Envoy does not start.

use std::hash::{DefaultHasher, Hasher};

use proxy_wasm::types::{BufferType, LogLevel};
use tollgate_core::config::Config;
use tollgate_core::live;

use crate::host;
use crate::store::SharedData;

fn log(level: LogLevel, msg: &str) {
    let _ = host::log(level, msg);
}

fn count(name: &str) {
    if let Ok(id) = host::define_counter(name) {
        let _ = host::increment(id, 1);
    }
}

/// Defines the configuration stats (so they show at zero before the first refusal).
fn define_stats() {
    for name in [live::APPLIED, live::REJECTED] {
        let _ = host::define_counter(name);
    }
}

/// Reads, parses and validates the plugin configuration of `size` bytes; logs and counts the
/// outcome. The text is read in pieces and never whole (`Config::parse_pieces`: the VM's memory
/// never shrinks, and a million keys are 120 MB of text); the document's digest is taken over the
/// pieces as they are read in order.
pub fn load(size: usize) -> Option<Config> {
    define_stats();
    let mut hasher = DefaultHasher::new();
    let mut hashed = 0usize;
    let parsed = if size == 0 {
        hasher.write(b"{}");
        Config::parse(b"{}")
    } else {
        Config::parse_pieces(
            &mut |offset, max| match host::get_buffer(BufferType::PluginConfiguration, offset, max) {
                Ok(piece) => {
                    // The digest covers each byte once, in order (a piece read again, as the
                    // whole-text fallback does, adds only what is new).
                    let end = offset.saturating_add(piece.len());
                    if offset <= hashed && end > hashed {
                        hasher.write(piece.get(hashed - offset..).unwrap_or_default());
                        hashed = end;
                    }
                    Ok(piece)
                }
                Err(e) => Err(format!("cannot read the plugin configuration: status {e}")),
            },
            size,
        )
    };
    let digest = hasher.finish();
    let bytes_len = size;
    let store = SharedData;
    match parsed {
        Ok(cfg) => {
            let first = live::applied(&store, digest);
            log(
                LogLevel::Info,
                &format!(
                    "tollgate: configured {} keys, {} accounts, {} models, {} clusters (document {digest:016x}, {} bytes)",
                    cfg.keys.len(),
                    cfg.accounts.len(),
                    cfg.models.len(),
                    cfg.clusters.len(),
                    bytes_len
                ),
            );
            if first {
                count(live::APPLIED);
            }
            Some(cfg)
        }
        Err(e) => {
            let update = live::configured_before(&store);
            if live::rejected(&store, digest) {
                count(live::REJECTED);
            }
            if update {
                log(
                    LogLevel::Critical,
                    &format!(
                        "tollgate: configuration update refused, the previous configuration keeps serving \
                         (document {digest:016x}, {} bytes): {e}",
                        bytes_len
                    ),
                );
            } else {
                log(LogLevel::Critical, &format!("tollgate: invalid configuration: {e}"));
            }
            None
        }
    }
}
