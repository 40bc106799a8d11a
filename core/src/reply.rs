//! A reply the filter sends itself: status, headers and body. A leaf: the errors render into it
//! and the exchange hands it to the glue, and it depends on neither.

/// A reply the filter sends itself.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}
