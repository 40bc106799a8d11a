//! Router models (`auto`): a configured model that serves no request itself but picks one of its
//! candidates from what the request shows. The rules, in their documented order, each skip the
//! candidates that fail it:
//!
//! 1. the key's `allowed_models`: a candidate the key may not use is skipped;
//! 2. the context window: the prompt estimate plus the request's `max_tokens` (when it sets one)
//!    must fit the candidate's `context_window`;
//! 3. tools: a request with tools needs a candidate that `supports` `tools`;
//! 4. images: a request with an image part needs a candidate that `supports` `images`;
//! 5. the cost ceiling: the spend the request would reserve at the candidate's prices (the
//!    admission estimate) must not exceed the router's `max_request_credits`.
//!
//! The first candidate in the router's order that passes every rule serves (list them cheapest
//! first). When none does, the refusal names the rule that skipped the last of them (the latest
//! rule in the order that some candidate failed first), in the caller's dialect.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::errors::{Code, GatewayError};
use crate::routing::Model;

/// A router model's rules (`router` on a model entry), compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct Router {
    /// Indexes into `Config::models`, in preference order.
    pub candidates: Vec<usize>,
    /// The cost ceiling: the most one request may reserve, in micro-credits.
    pub max_request_micros: Option<u64>,
}

/// What a model accepts besides text (`supports: ["tools", "images"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Supports {
    pub tools: bool,
    pub images: bool,
}

/// One entry of a model's `supports` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    Tools,
    Images,
}

impl Supports {
    pub fn from_list(list: &[Capability]) -> Self {
        Supports { tools: list.contains(&Capability::Tools), images: list.contains(&Capability::Images) }
    }
}

/// What the request shows the rules, read from the parsed pivot (OpenAI chat) body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Signals {
    /// The gateway's prompt estimate, in tokens.
    pub prompt_tokens: u64,
    /// The completion budget the client set, if any.
    pub max_tokens: Option<u64>,
    /// The request offers tools (`tools` or the legacy `functions`, not empty).
    pub tools: bool,
    /// A message has an image part (`image_url`).
    pub images: bool,
}

impl Signals {
    pub fn of(body: &Map<String, Value>, prompt_tokens: u64, max_tokens: Option<u64>) -> Self {
        let listed = |k: &str| body.get(k).and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        Signals { prompt_tokens, max_tokens, tools: listed("tools") || listed("functions"), images: has_image(body) }
    }

    /// Tokens the request needs of a context window: its prompt and the completion it asks for.
    pub fn window_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.max_tokens.unwrap_or(0))
    }
}

/// Whether a message of the pivot body has an `image_url` part.
fn has_image(body: &Map<String, Value>) -> bool {
    let Some(Value::Array(messages)) = body.get("messages") else { return false };
    messages
        .iter()
        .filter_map(|m| m.get("content").and_then(Value::as_array))
        .flatten()
        .any(|part| part.get("type").and_then(Value::as_str) == Some("image_url"))
}

/// The rules, in the order they apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    Allowed,
    ContextWindow,
    Tools,
    Images,
    CostCeiling,
}

/// The first rule `m` fails for this request, or None when it may serve it. `allowed`: the key
/// may use the model; `reserve_micros`: what the request would reserve at its prices.
pub fn first_failed(
    router: &Router,
    m: &Model,
    s: &Signals,
    allowed: impl Fn(&Model) -> bool,
    reserve_micros: impl Fn(&Model) -> u64,
) -> Option<Rule> {
    if !allowed(m) {
        return Some(Rule::Allowed);
    }
    if m.context_window.is_some_and(|w| s.window_tokens() > w) {
        return Some(Rule::ContextWindow);
    }
    if s.tools && !m.supports.tools {
        return Some(Rule::Tools);
    }
    if s.images && !m.supports.images {
        return Some(Rule::Images);
    }
    if router.max_request_micros.is_some_and(|max| reserve_micros(m) > max) {
        return Some(Rule::CostCeiling);
    }
    None
}

/// The candidate that serves the request (the first in the router's order that passes every
/// rule), or the refusal naming the rule that skipped the last of them.
pub fn choose<'c>(
    name: &str,
    router: &Router,
    models: &'c [Model],
    s: &Signals,
    allowed: impl Fn(&Model) -> bool,
    reserve_micros: impl Fn(&Model) -> u64,
) -> Result<&'c Model, GatewayError> {
    let mut last: Option<Rule> = None;
    for m in router.candidates.iter().filter_map(|&i| models.get(i)) {
        match first_failed(router, m, s, &allowed, &reserve_micros) {
            None => return Ok(m),
            Some(r) => last = last.max(Some(r)),
        }
    }
    let candidates = || router.candidates.iter().filter_map(|&i| models.get(i));
    let list = candidates().map(|m| m.id.as_str()).collect::<Vec<_>>().join(", ");
    Err(match last.unwrap_or(Rule::Allowed) {
        Rule::Allowed => GatewayError::new(
            Code::Forbidden,
            format!("This API key may use none of the models '{name}' chooses from ({list})"),
        )
        .with_param("model"),
        Rule::ContextWindow => {
            let widest = candidates().filter(|m| allowed(m)).filter_map(|m| m.context_window).max().unwrap_or(0);
            let asked = match s.max_tokens {
                Some(n) => format!("about {} tokens of prompt and {n} of max_tokens", s.prompt_tokens),
                None => format!("about {} tokens of prompt", s.prompt_tokens),
            };
            GatewayError::new(
                Code::ContextLengthExceeded,
                format!(
                    "This request needs {asked}, more than the largest context window ({widest} tokens) among the \
                     models '{name}' chooses from"
                ),
            )
            .with_param("messages")
        }
        Rule::Tools => GatewayError::bad(
            "tools",
            format!("None of the models '{name}' could choose for this request supports tools"),
        ),
        Rule::Images => GatewayError::bad(
            "messages",
            format!("None of the models '{name}' could choose for this request accepts image input"),
        ),
        Rule::CostCeiling => {
            let max = router.max_request_micros.unwrap_or(0) as f64 / 1e6;
            GatewayError::bad(
                "model",
                format!(
                    "Every model '{name}' could choose for this request would reserve more than its cost ceiling of \
                     {max} credits"
                ),
            )
        }
    })
}

#[cfg(test)]
#[path = "tests/router_tests.rs"]
mod tests;
