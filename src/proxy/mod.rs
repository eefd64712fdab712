//! The intercepting proxy and the request pipeline it shares with `aivault invoke`.
//!
//! Architecture invariant: hyper, hyper-util and tokio-rustls are used only under this module
//! (and `ca`, for leaf certificates). The pipeline (`pipeline.rs`) is the only code that decides
//! to inject a credential.

pub mod agent_auth;
pub mod agent_client;
pub mod approval;
pub mod audit_sink;
pub mod body;
pub mod conn;
pub mod decode;
pub mod gate;
pub mod guard;
pub mod invoke;
pub mod metrics;
pub mod mitm;
pub mod oauth;
pub mod oauth_redirect;
pub mod outer;
pub mod pipeline;
pub mod proposals;
pub mod redact;
pub mod refusal_log;
pub mod respond;
pub mod server;
pub mod session_tally;
pub mod sign;
pub mod splice;
pub mod state;
pub mod tunnel;
pub mod upstream;
pub mod upstream_proxy;
pub mod websocket;

use std::sync::Arc;

/// The rustls crypto provider used everywhere (ring). One place to change when rustls moves
/// providers into separate crates.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
