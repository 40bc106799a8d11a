//! Configuration loading (`on_configure`), inline or through extension config discovery (ECDS).
//!
//! An update reuses the running VMs (`vm_id`, the VM configuration and the code unchanged) and
//! configures a new root context in each, so shared data (the limits' counters) carries over.
//! Loading is idempotent: Envoy configures each document on a throwaway VM first, then on every
//! VM, and each call builds the same `Config` and counts the document once (`tollgate_core::live`).
//! A refused document returns `false`: Envoy then refuses the whole update (an ECDS update is
//! rejected, `extension_config_discovery.http_filter.<name>.update_rejected`) and keeps the
//! previous configuration serving; at start, Envoy does not start.

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

/// Reads, parses and validates the plugin configuration; logs and counts the outcome.
pub fn load() -> Option<Config> {
    define_stats();
    let bytes = match host::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
        Ok(b) => b,
        Err(e) => {
            log(LogLevel::Critical, &format!("tollgate: cannot read the plugin configuration: {e:?}"));
            return None;
        }
    };
    let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
    let digest = live::digest(bytes);
    let store = SharedData;
    match Config::parse(bytes) {
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
                    bytes.len()
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
                        bytes.len()
                    ),
                );
            } else {
                log(LogLevel::Critical, &format!("tollgate: invalid configuration: {e}"));
            }
            None
        }
    }
}
