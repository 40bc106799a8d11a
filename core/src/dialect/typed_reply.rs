//! A non-streamed OpenAI upstream's completion rewritten for an Anthropic or Gemini client
//! without a `serde_json::Value`: read typed and borrowed (`openai::completion`), written
//! straight to bytes (`anthropic::write_response`, `gemini::write_response`). The bytes and the
//! usage are those of the `Value` path (`translate::response_via_value`); a body the typed read
//! does not cover takes that path.

use serde_json::Number;

use crate::dialect::openai::completion;
use crate::dialect::{anthropic, gemini, Dialect};
use crate::routing::Price;
use crate::usage::{self, Usage};

/// The client's body and the usage, or `None`: take the `Value` path.
pub fn response(
    front: Dialect,
    body: &[u8],
    client_model: &str,
    price: Option<&Price>,
) -> Option<(Option<Vec<u8>>, Option<Usage>)> {
    if !matches!(front, Dialect::Anthropic | Dialect::Gemini) {
        return None;
    }
    let c = completion::read(body)?;
    let usage = c.usage.as_ref().map(|u| u.usage);
    let out = match front {
        Dialect::Anthropic => {
            // `usage.credits_consumed`: ours at the price when the completion has usage (and it
            // is a finite number), else the upstream's own.
            let ours = match (price, usage.as_ref()) {
                (Some(p), Some(u)) => Number::from_f64((usage::credits(p, u) * 1e6).round() / 1e6),
                _ => None,
            };
            let credits = ours.or_else(|| c.usage.as_ref().and_then(|u| u.credits.clone()));
            anthropic::write_response(&c, client_model, credits.as_ref())
        }
        _ => gemini::write_response(&c, client_model),
    };
    Some((Some(out), usage))
}

#[cfg(test)]
#[path = "tests/typed_reply_tests.rs"]
mod tests;
