//! `aivault invoke`: the proxy's request pipeline, run in-process for one named capability.

use http::{HeaderName, HeaderValue, Request};
use http_body_util::BodyExt as _;
use serde::Serialize;

use super::audit_sink::AuditSink;
use super::pipeline::{self, Caller, Destination, Shared, SnapshotCell};
use super::respond;
use super::upstream::{Upstream, UpstreamConfig};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::refusal::ErrorCode;
use crate::scope::Context;
use crate::service::Vault;

/// What the user asked `invoke` to do.
#[derive(Debug)]
pub struct InvokeRequest {
    pub capability: String,
    pub method: Option<String>,
    pub path: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub ctx: Context,
    pub dry_run: bool,
}

/// What happened, without any secret: for `--json` and `--dry-run`.
#[derive(Debug, Serialize)]
pub struct InvokeSummary {
    pub capability: String,
    pub method: String,
    pub host: String,
    pub path: String,
    pub credential: Option<String>,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

pub struct InvokeResponse {
    pub summary: InvokeSummary,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub fn run(cfg: &Config, net: &UpstreamConfig, req: InvokeRequest) -> Result<InvokeResponse> {
    let vault = Vault::open(cfg)?;
    let snapshot = vault.snapshot()?;
    let (rule, _) = snapshot.capability(&req.capability).ok_or_else(|| {
        Error::not_found("capability", req.capability.as_str(), "list them with `aivault capability list`")
    })?;
    let method = match req.method.clone() {
        Some(m) => m.to_ascii_uppercase(),
        None => match rule.methods.as_slice() {
            [only] => only.clone(),
            many => {
                return Err(Error::invalid(format!("{} allows {}; pass --method", req.capability, many.join(", "))));
            }
        },
    };
    let path = match req.path.clone() {
        Some(p) => p,
        None => match rule.path_prefixes.as_slice() {
            [only] => only.clone(),
            many => {
                return Err(Error::invalid(format!(
                    "{} allows paths {}; pass --path",
                    req.capability,
                    many.join(", ")
                )));
            }
        },
    };
    if !path.starts_with('/') {
        return Err(Error::invalid(format!("--path '{path}' must start with '/'")));
    }
    let raw_path = path.split('?').next().unwrap_or("/").to_owned();
    if let Err(denial) = snapshot.check_capability(&req.capability, &method, &raw_path) {
        return Err(Error::Denied {
            code: denial.code(),
            message: format!("{}: {}: {}", denial.code(), req.capability, denial.message()),
        });
    }
    let with_code = |e: Error| match e {
        Error::Denied { code, message } => Error::Denied { code, message: format!("{code}: {message}") },
        Error::Resolve(e) => {
            let code = crate::refusal::ErrorCode::NoCredential;
            Error::Denied { code, message: format!("{code}: {e}") }
        }
        other => other,
    };
    let (host, port) = snapshot.invoke_host(&req.capability, &req.ctx).map_err(with_code)?;
    let resolved = snapshot.resolve(vault.key(), &req.capability, &host, port, &req.ctx).map_err(with_code)?;
    let credential = resolved.credential_id.clone();
    drop(resolved);
    let mut summary = InvokeSummary {
        capability: req.capability.clone(),
        method: method.clone(),
        host: host.clone(),
        path: raw_path,
        credential: Some(credential),
        allowed: true,
        status: None,
        body: None,
    };
    if req.dry_run {
        return Ok(InvokeResponse { summary, headers: vec![], body: vec![] });
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::io("cannot start the async runtime"))?;
    let (store, spill) = (cfg.store.clone(), cfg.spill_path());
    let lock_wait = cfg.lock_wait;
    let key = vault.into_key();
    let (status, headers, body) = runtime.block_on(async move {
        let (audit, writer) = AuditSink::spawn(store.clone(), spill, lock_wait);
        let shared = Shared {
            key,
            store,
            lock_wait,
            snapshot: SnapshotCell::new(snapshot),
            upstream: Upstream::new(net.clone())?,
            audit,
            limits: super::pipeline::Limits::default(),
            oauth: super::oauth::TokenManager::new(Some(cfg.clone())),
            maskers: Default::default(),
        };
        let mut request = Request::builder().method(method.as_str()).uri(path.as_str());
        for (k, v) in &req.headers {
            let name =
                HeaderName::from_bytes(k.as_bytes()).map_err(|_| Error::invalid(format!("bad header name '{k}'")))?;
            let value = HeaderValue::from_str(v).map_err(|_| Error::invalid(format!("bad value for header '{k}'")))?;
            request = request.header(name, value);
        }
        let request = request.body(respond::full(req.body)).map_err(|e| Error::invalid(e.to_string()))?;
        let caller = Caller {
            agent: "cli".into(),
            ctx: req.ctx.clone(),
            grants: std::sync::Arc::from(Vec::new()),
            session: None,
        };
        let dest = Destination { https: port != 80, host, port, capability: Some(req.capability.clone()) };
        let outcome = pipeline::serve(&shared, &caller, &dest, request).await;
        let response = match outcome {
            Ok(r) => r,
            Err(refusal) => {
                drop(shared);
                let _ = writer.await;
                return Err(Error::from_refusal(refusal));
            }
        };
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::Upstream { code: ErrorCode::UpstreamError, message: e.to_string() })?
            .to_bytes();
        drop(shared);
        let _ = writer.await;
        Ok::<_, Error>((status, headers, bytes.to_vec()))
    })?;
    summary.status = Some(status);
    summary.body = serde_json::from_slice(&body)
        .ok()
        .or_else(|| Some(serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())));
    Ok(InvokeResponse { summary, headers, body })
}
