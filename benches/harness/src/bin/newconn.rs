//! New connections per second (W2): `threads` clients, each in a loop opening a TCP connection
//! (through a proxy's CONNECT, or direct), a full TLS 1.3 handshake (no resumption), one GET on it,
//! then closing it. Any answer but 200 is an error: the origin answers 401 unless the proxy
//! injected the credential.
//!
//! The client does not verify the server's certificate chain: the two ECDSA verifications per
//! handshake are the load generator's work, not the proxy's, and with them a client sharing one
//! core with the origin (as here) runs out of CPU before a proxy on its own core does. The proxy
//! still mints or picks the leaf, signs the handshake and serves the request.
//!
//! Usage: newconn <proxy ADDR:PORT | direct> <token | -> <host> <connect ADDR:PORT> <path> <seconds> <threads> [bearer]
//! Prints {"rps", "requests", "errors", "seconds"}.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

#[derive(Debug)]
struct NoVerify(Vec<SignatureScheme>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.clone()
    }
}

struct Job {
    proxy: Option<String>,
    token: String,
    host: String,
    connect: String,
    request: Vec<u8>,
    config: Arc<rustls::ClientConfig>,
}

fn one(job: &Job) -> Result<(), Box<dyn std::error::Error>> {
    let mut tcp = match &job.proxy {
        None => TcpStream::connect(&job.connect)?,
        Some(proxy) => aivault_bench_harness::tunnel(proxy, &job.host, &job.token)?,
    };
    tcp.set_nodelay(true)?;
    let conn = rustls::ClientConnection::new(job.config.clone(), ServerName::try_from(job.host.clone())?)?;
    let mut reader = BufReader::new(rustls::StreamOwned::new(conn, &mut tcp));
    reader.get_mut().write_all(&job.request)?;
    reader.get_mut().flush()?;
    let status = aivault_bench_harness::read_response(&mut reader)?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("unexpected answer: {}", status.trim_end()).into());
    }
    reader.get_mut().conn.send_close_notify();
    let _ = reader.get_mut().flush();
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let (a, bearer) = match a.len() {
        8 => (&a[..7], a[7].clone()),
        _ => (&a[..], "placeholder".to_owned()),
    };
    let [proxy, token, host, connect, path, seconds, threads] = a else {
        return Err(
            "usage: newconn <proxy|direct> <token|-> <host> <connect> <path> <seconds> <threads> [bearer]".into()
        );
    };
    let (seconds, threads): (f64, usize) = (seconds.parse()?, threads.parse()?);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let schemes = provider.signature_verification_algorithms.supported_schemes();
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(schemes)))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    let job = Arc::new(Job {
        proxy: (proxy != "direct").then(|| proxy.clone()),
        token: token.clone(),
        host: host.clone(),
        connect: connect.clone(),
        request: format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {bearer}\r\nConnection: close\r\n\r\n"
        )
        .into_bytes(),
        config: Arc::new(config),
    });
    let (ok, errors, stop) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (job, ok, errors, stop, first_error) =
                (job.clone(), ok.clone(), errors.clone(), stop.clone(), first_error.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match one(&job) {
                        Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            first_error.lock().map(|mut f| f.get_or_insert(e.to_string()).clone()).ok();
                            errors.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (ok, errors) = (ok.load(Ordering::Relaxed), errors.load(Ordering::Relaxed));
    if let Some(e) = first_error.lock().ok().and_then(|f| f.clone()) {
        eprintln!("newconn: {errors} errors, the first: {e}");
    }
    println!(
        "{{\"rps\": {:.1}, \"requests\": {ok}, \"errors\": {errors}, \"seconds\": {elapsed:.3}}}",
        ok as f64 / elapsed
    );
    Ok(())
}
