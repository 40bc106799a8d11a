//! The glue's side of failover to the next tier (`tollgate_core::exchange::FailoverCall`): the
//! upstream's failed response is held at its headers (nothing of it reaches the client), the
//! next attempt is an HTTP call to the fallback's cluster, and its answer, translated by the
//! exchange, is sent to the client as a local response. Envoy sends a local response made after
//! the response headers were held, but before any went downstream, directly to the client (its
//! filter chain is not run again).

use std::rc::Rc;

use proxy_wasm::types::{Action, BufferType, LogLevel, MapType};
use tollgate_core::exchange::{failover_stat, FailoverCall, FallbackAnswer, LocalReply};

use crate::{add, define, env, host, log, store, Http};

/// Where a failover stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failing {
    /// No failover (the upstream's response is the client's).
    #[default]
    No,
    /// A fallback's call is out, with this token.
    Calling(u32),
    /// The client was answered from a fallback call (or with the last failure).
    Answered,
}

impl Http {
    /// At the upstream's response headers (`status`), before anything of them is used: when the
    /// attempt fails over and a fallback can take it, the call is sent and the response held
    /// (`Some(Pause)`); `None` goes on with this response as before.
    pub(crate) fn try_failover(&mut self, status: u16) -> Option<Action> {
        // No hostcall (not even the clock) for a request that cannot fail over.
        if !self.ex.may_fail_over(status) {
            return None;
        }
        let cfg = Rc::clone(&self.config);
        let call = self.ex.fail_over(&cfg, status, &self.present, &env(&store::SharedData))?;
        Some(self.send_failover(call))
    }

    /// Sends a fallback's call; a call the host refuses (an unknown cluster) is a failed attempt,
    /// and the next one is tried, or the client answered with the failure.
    fn send_failover(&mut self, mut call: FailoverCall) -> Action {
        loop {
            self.count_failover();
            match host::dispatch_call(&call.cluster, &call.headers, &call.body, call.timeout_ms) {
                Ok(token) => {
                    self.failing = Failing::Calling(token);
                    return Action::Pause;
                }
                Err(status) => {
                    log(
                        LogLevel::Warn,
                        &format!(
                            "tollgate[{}]: cannot call the fallback cluster '{}' (status {status})",
                            self.id, call.cluster
                        ),
                    );
                    let cfg = Rc::clone(&self.config);
                    match self.ex.fallback_answered(&cfg, 0, None, b"", &self.present, &env(&store::SharedData)) {
                        FallbackAnswer::Next(next) => call = next,
                        FallbackAnswer::Reply(r) => return self.answer(&r),
                    }
                }
            }
        }
    }

    /// Counts a failover under the model whose attempt failed (`tollgate.failovers`).
    fn count_failover(&self) {
        if let Some(model) = self.ex.failed_model() {
            add(define(&failover_stat(model)), 1);
        }
    }

    fn answer(&mut self, r: &LocalReply) -> Action {
        self.failing = Failing::Answered;
        self.reply(r)
    }

    /// A fallback call's answer (`token`): the next attempt, or the client's response. `false`
    /// when the token is not this request's fallback call.
    pub(crate) fn failover_answered(&mut self, token: u32, body_size: usize) -> bool {
        if self.failing != Failing::Calling(token) {
            return false;
        }
        self.failing = Failing::No;
        let pairs = host::header_pairs(MapType::HttpCallResponseHeaders).unwrap_or_default();
        let text =
            |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned());
        // No status: the call failed (connect failure, reset, timeout).
        let status = text(":status").and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
        let content_type = text("content-type");
        // Never more than the gateway buffers (one byte more tells it the answer is larger).
        let max = self.config.max_body_bytes.saturating_add(1);
        let body = host::get_buffer(BufferType::HttpCallResponseBody, 0, body_size.min(max)).unwrap_or_default();
        let cfg = Rc::clone(&self.config);
        let answer = self.ex.fallback_answered(
            &cfg,
            status,
            content_type.as_deref(),
            &body,
            &self.present,
            &env(&store::SharedData),
        );
        match answer {
            FallbackAnswer::Next(call) => {
                self.send_failover(call);
            }
            FallbackAnswer::Reply(r) => {
                self.answer(&r);
            }
        }
        true
    }

    /// A piece of the failed upstream response while a failover holds it: dropped (`Some`).
    pub(crate) fn failover_holds(&mut self, size: usize) -> Option<Action> {
        if self.failing == Failing::No {
            return None;
        }
        if size > 0 {
            if let Err(status) = host::set_buffer(BufferType::HttpResponseBody, 0, size, &[]) {
                self.count_failure("cannot drop the failed response's body", status);
            }
        }
        Some(Action::Pause)
    }
}
