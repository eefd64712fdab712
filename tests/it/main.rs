//! The one integration test binary: drives the real `aivault` binary and real clients.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod agent_env;
mod approvals;
mod aws_sigv4;
mod cli_capabilities;
mod cli_credentials;
mod cli_errors;
mod cli_secrets;
mod console_browser;
mod destinations;
mod explain;
mod external_sources;
mod fleet;
mod grants;
mod hardening_audit;
mod hardening_connections;
mod hardening_files;
mod hardening_masking;
mod hardening_requests;
mod invoke;
mod limits;
mod oauth;
mod observability;
mod proposals;
mod proxy_bad_input;
mod proxy_clients;
mod proxy_curl;
mod proxy_errors;
mod proxy_protocol;
mod proxy_scope;
mod proxy_strategies;
mod readme;
mod registry_schema;
mod run_isolate;
mod run_sandbox;
mod tidy;
mod tls_resumption;
mod upstream_proxy;
