//! aivault: a credential proxy for AI agents.
//!
//! Secrets live encrypted in a local vault; an intercepting proxy injects them into allowed
//! requests so the agent never sees them. See `ARCHITECTURE.md` for the module map and the
//! direction of dependencies (pure leaves → resources → service → proxy → cli).

pub mod audit;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod error;
pub mod percent;
pub mod policy;
pub mod proposal;
pub mod refusal;
pub mod registry;
pub mod scope;
pub mod secret;
pub mod service;
pub mod source;
pub mod store;
pub mod time;

pub use error::{Error, ErrorKind, Result};

/// Associated data for the CA private key sealed with the master key.
pub const CA_KEY_AAD: &[u8] = b"aivault:ca-key:v1";
pub mod ca;
pub mod cli;
pub mod console;
pub mod proxy;
pub mod run;
pub mod sandbox;
