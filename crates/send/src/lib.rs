//! How Switchyard sends: the request a claimed delivery becomes (templates, signing,
//! credentials), the one SSRF-guarded HTTP client it goes out through, and what its
//! answer means. The worker sends every delivery through it; the dashboard's "send
//! test" sends one sample the same way, without depending on the worker.

pub mod anthropic;
pub mod outbound;
pub mod request;
pub mod sample;

pub use outbound::{Outbound, Sent};

/// One email: plain text with an HTML alternative.
#[derive(Debug, Clone)]
pub struct Email {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}
