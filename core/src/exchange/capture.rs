//! Content capture: for keys whose configuration opts in (`log_content`), the first bytes of the
//! request and response bodies go into the billing record.

use super::Exchange;

/// At most this much of a request or response body goes into a billing record, for keys whose
/// configuration opts in to content logging (`log_content`).
pub const CONTENT_LOG_CAP: usize = 64 * 1024;

impl Exchange {
    pub(super) fn capture_response(&mut self, bytes: &[u8]) {
        if let Some((_, resp)) = &mut self.content {
            let room = CONTENT_LOG_CAP.saturating_sub(resp.len());
            resp.extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or(&[]));
        }
    }
}
