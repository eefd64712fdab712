//! A fake HTTPS upstream on loopback that records every request it receives.
//!
//! Its certificate is issued by a throwaway CA written to `ca_path`, which tests hand to the
//! proxy with `--upstream-ca` (never a "skip verification" switch). It serves HTTP/1.1 and h2.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path_and_query: String,
    /// `:authority` (HTTP/2) or the `Host` header (HTTP/1.1).
    pub authority: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }
}

/// A fake OAuth 2.0 authorization server living on the same upstream (`/oauth/...`), guarding
/// `/oauth-api/...` with the access tokens it issued.
#[derive(Default)]
pub struct OAuthServer {
    pub client_id: String,
    pub client_secret: String,
    pub token_calls: usize,
    pub refresh_tokens: std::collections::HashSet<String>,
    /// access token → expiry (Unix seconds).
    pub access_tokens: std::collections::HashMap<String, u64>,
    pub rotate_refresh_tokens: bool,
    pub expires_in: u64,
    /// code → (S256 challenge, redirect_uri)
    pub codes: std::collections::HashMap<String, (String, String)>,
    pub delay_ms: u64,
    pub last_token_form: String,
    counter: u64,
}

impl OAuthServer {
    fn next(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}-{}", self.counter)
    }

    /// Issues an access token valid for `expires_in` seconds.
    pub fn issue_access(&mut self) -> String {
        let t = self.next("at");
        let exp = now_secs() + self.expires_in;
        self.access_tokens.insert(t.clone(), exp);
        t
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

pub struct FakeUpstream {
    pub addr: SocketAddr,
    pub ca_path: PathBuf,
    pub seen: Arc<Mutex<Vec<Recorded>>>,
    pub oauth: Arc<Mutex<OAuthServer>>,
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

impl FakeUpstream {
    /// Starts serving names `*.example.com`, `example.com` and the other test hosts.
    pub fn start() -> FakeUpstream {
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "aivault test upstream CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let names = vec![
            "api.example.com".to_owned(),
            "api-staging.example.com".to_owned(),
            "*.example.com".to_owned(),
            "*.myshopify.com".to_owned(),
            "api.openai.com".to_owned(),
            "api.telegram.org".to_owned(),
            "generativelanguage.googleapis.com".to_owned(),
            "api.trello.com".to_owned(),
            "api.datadoghq.com".to_owned(),
            "api.twilio.com".to_owned(),
            "auth.example.com".to_owned(),
            "localhost".to_owned(),
        ];
        let leaf_params = rcgen::CertificateParams::new(names).expect("leaf params");
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).expect("leaf");
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_path = dir.path().join("upstream-ca.pem");
        std::fs::write(&ca_path, ca_cert.pem()).expect("write ca");

        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(leaf.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .expect("server config");
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        let seen: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let oauth: Arc<Mutex<OAuthServer>> = Arc::new(Mutex::new(OAuthServer {
            client_id: "aivault-client".into(),
            client_secret: "client-secret-xyz".into(),
            expires_in: 3600,
            ..Default::default()
        }));
        let oauth2 = oauth.clone();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen2 = seen.clone();
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let acceptor = acceptor.clone();
                let seen = seen2.clone();
                let oauth = oauth2.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let svc = hyper::service::service_fn(move |req| handle(req, seen.clone(), oauth.clone()));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        FakeUpstream { addr, ca_path, seen, oauth, _dir: dir, _runtime: runtime }
    }

    /// `--resolve` value sending `host:443` here.
    pub fn resolve(&self, host: &str) -> String {
        format!("{host}:443:{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().map(|g| g.clone()).unwrap_or_default()
    }

    pub fn last(&self) -> Recorded {
        self.requests().pop().expect("the upstream received no request")
    }
}

type Body = BoxBody<Bytes, Infallible>;

async fn handle(
    mut req: Request<hyper::body::Incoming>,
    seen: Arc<Mutex<Vec<Recorded>>>,
    oauth: Arc<Mutex<OAuthServer>>,
) -> Result<Response<Body>, Infallible> {
    let websocket_key = req.headers().get("sec-websocket-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let on_upgrade = websocket_key.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
    let path_and_query = parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let rec = Recorded {
        method: parts.method.to_string(),
        path_and_query: path_and_query.clone(),
        authority: parts
            .uri
            .authority()
            .map(|a| a.to_string())
            .or_else(|| parts.headers.get("host").and_then(|h| h.to_str().ok()).map(str::to_owned))
            .unwrap_or_default(),
        version: format!("{:?}", parts.version),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body: body.clone(),
    };
    if let Ok(mut g) = seen.lock() {
        g.push(rec.clone());
    }
    let path = parts.uri.path();
    if let (Some(key), Some(on_upgrade)) = (websocket_key, on_upgrade) {
        // Echo every byte back once upgraded (enough to prove the splice both ways).
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let (mut r, mut w) = tokio::io::split(&mut io);
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        use base64::Engine as _;
        let digest = ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes(),
        );
        let accept = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        let mut resp = Response::new(full(String::new()));
        *resp.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut().insert("upgrade", "websocket".parse().expect("h"));
        resp.headers_mut().insert("connection", "Upgrade".parse().expect("h"));
        resp.headers_mut().insert("sec-websocket-accept", accept.parse().expect("h"));
        return Ok(resp);
    }
    if path == "/oauth/token" {
        let delay = oauth.lock().map(|o| o.delay_ms).unwrap_or(0);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let (status, reply) = token_endpoint(&rec, &oauth);
        let mut resp = Response::new(full(reply.to_string()));
        *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
        resp.headers_mut().insert("content-type", "application/json".parse().expect("ct"));
        return Ok(resp);
    }
    if path == "/oauth/authorize" {
        let q: std::collections::HashMap<String, String> = form_pairs(parts.uri.query().unwrap_or(""));
        let mut o = oauth.lock().expect("oauth");
        let code = o.next("code");
        o.codes.insert(
            code.clone(),
            (q.get("code_challenge").cloned().unwrap_or_default(), q.get("redirect_uri").cloned().unwrap_or_default()),
        );
        let location = format!(
            "{}?code={code}&state={}",
            q.get("redirect_uri").cloned().unwrap_or_default(),
            q.get("state").cloned().unwrap_or_default()
        );
        let mut resp = Response::new(full(String::new()));
        *resp.status_mut() = hyper::StatusCode::FOUND;
        resp.headers_mut().insert("location", location.parse().expect("location"));
        return Ok(resp);
    }
    if path.starts_with("/oauth-api/") {
        let bearer = rec.header("authorization").and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("").to_owned();
        let valid =
            oauth.lock().map(|o| o.access_tokens.get(&bearer).is_some_and(|exp| *exp > now_secs())).unwrap_or(false);
        if !valid {
            let mut resp = Response::new(full("{\"error\":\"invalid_token\"}".to_owned()));
            *resp.status_mut() = hyper::StatusCode::UNAUTHORIZED;
            return Ok(resp);
        }
    }
    if path == "/v1/users/reflect" {
        let auth = rec.header("authorization").unwrap_or("");
        return Ok(super::reflect::respond(parts.uri.query().unwrap_or(""), auth));
    }
    if path.starts_with("/v1/users/echo") {
        // A debugging endpoint that echoes the credential it received, in the body and a header.
        let auth = rec.header("authorization").unwrap_or("").to_owned();
        let mut resp = Response::new(full(format!("you sent: {auth}")));
        if let Ok(v) = auth.parse() {
            resp.headers_mut().insert("x-echo", v);
        }
        return Ok(resp);
    }
    if path.starts_with("/sse") {
        let stream = async_stream(5, Duration::from_millis(150));
        let mut resp = Response::new(stream);
        resp.headers_mut().insert("content-type", "text/event-stream".parse().expect("ct"));
        return Ok(resp);
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let status = code.parse::<u16>().unwrap_or(500);
        let mut resp = Response::new(full(format!("{{\"status\":{status}}}")));
        *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        return Ok(resp);
    }
    let reply = serde_json::json!({
        "ok": true,
        "method": rec.method,
        "path": path_and_query,
        "version": rec.version,
        "authorization_present": rec.header("authorization").is_some(),
        "body_len": body.len(),
    });
    let mut resp = Response::new(full(reply.to_string()));
    resp.headers_mut().insert("content-type", "application/json".parse().expect("ct"));
    Ok(resp)
}

fn full(s: String) -> Body {
    Full::new(Bytes::from(s)).boxed()
}

fn async_stream(n: usize, gap: Duration) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    tokio::spawn(async move {
        for i in 0..n {
            let event = format!("data: event {i}\n\n");
            if tx.send(Ok(Frame::data(Bytes::from(event)))).await.is_err() {
                return;
            }
            tokio::time::sleep(gap).await;
        }
    });
    let stream = futures_util_stream(rx);
    StreamBody::new(stream).boxed()
}

fn futures_util_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>,
) -> impl futures_core::Stream<Item = Result<Frame<Bytes>, Infallible>> {
    struct S(tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>);
    impl futures_core::Stream for S {
        type Item = Result<Frame<Bytes>, Infallible>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            self.0.poll_recv(cx)
        }
    }
    let _ = &mut rx;
    S(rx)
}

fn form_pairs(text: &str) -> std::collections::HashMap<String, String> {
    text.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect()
}

fn decode(s: &str) -> String {
    aivault::percent::decode_form(s)
}

fn token_endpoint(rec: &Recorded, oauth: &Arc<Mutex<OAuthServer>>) -> (u16, serde_json::Value) {
    use base64::Engine as _;
    let form = form_pairs(&String::from_utf8_lossy(&rec.body));
    let mut o = oauth.lock().expect("oauth");
    o.token_calls += 1;
    o.last_token_form = String::from_utf8_lossy(&rec.body).into_owned();
    let (id, secret) = match rec.header("authorization").and_then(|v| v.strip_prefix("Basic ")) {
        Some(b) => {
            let text = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap_or_default())
                .unwrap_or_default();
            let (i, s) = text.split_once(':').unwrap_or(("", ""));
            (decode(i), decode(s))
        }
        None => {
            (form.get("client_id").cloned().unwrap_or_default(), form.get("client_secret").cloned().unwrap_or_default())
        }
    };
    if id != o.client_id || secret != o.client_secret {
        return (401, serde_json::json!({"error": "invalid_client", "error_description": "unknown client"}));
    }
    let refresh = match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {
            let rt = form.get("refresh_token").cloned().unwrap_or_default();
            if !o.refresh_tokens.contains(&rt) {
                return (
                    400,
                    serde_json::json!({"error": "invalid_grant", "error_description": "refresh token is invalid or revoked"}),
                );
            }
            if o.rotate_refresh_tokens {
                o.refresh_tokens.remove(&rt);
                let new = o.next("rt");
                o.refresh_tokens.insert(new.clone());
                Some(new)
            } else {
                None
            }
        }
        Some("authorization_code") => {
            let code = form.get("code").cloned().unwrap_or_default();
            let Some((challenge, redirect)) = o.codes.remove(&code) else {
                return (400, serde_json::json!({"error": "invalid_grant", "error_description": "unknown code"}));
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref());
            if computed != challenge || form.get("redirect_uri") != Some(&redirect) {
                return (
                    400,
                    serde_json::json!({"error": "invalid_grant", "error_description": "PKCE or redirect_uri mismatch"}),
                );
            }
            let new = o.next("rt");
            o.refresh_tokens.insert(new.clone());
            Some(new)
        }
        Some("client_credentials") => None,
        _ => return (400, serde_json::json!({"error": "unsupported_grant_type"})),
    };
    let access = o.issue_access();
    let mut reply = serde_json::json!({"access_token": access, "token_type": "Bearer", "expires_in": o.expires_in});
    if let Some(r) = refresh {
        reply["refresh_token"] = r.into();
    }
    (200, reply)
}
