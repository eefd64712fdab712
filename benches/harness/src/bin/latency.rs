//! Latency at one connection with microsecond resolution (hey reports in 0.1 ms steps): one
//! keep-alive TLS connection, direct or through a proxy's CONNECT, N sequential GETs timed with a
//! monotonic clock, after a warm-up.
//! Usage: latency <proxy ADDR:PORT | direct> <token | -> <ca.pem> <host> <connect ADDR:PORT> <path> <n> [bearer]
//! (`bearer`: the Authorization token sent, default `placeholder`; direct requests need the real one)
//! Prints {"n", "p50_us", "p90_us", "p99_us", "mean_us"}.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let (a, bearer) = match a.len() {
        8 => (&a[..7], a[7].clone()),
        _ => (&a[..], "placeholder".to_owned()),
    };
    let [proxy, token, ca, host, connect, path, n] = a else {
        return Err("usage: latency <proxy|direct> <token|-> <ca.pem> <host> <connect> <path> <n> [bearer]".into());
    };
    let n: usize = n.parse()?;
    let mut tcp = if proxy == "direct" {
        TcpStream::connect(connect)?
    } else {
        aivault_bench_harness::tunnel(proxy, host, token)?
    };
    tcp.set_nodelay(true)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(config), ServerName::try_from(host.clone())?)?;
    let tls = rustls::StreamOwned::new(conn, &mut tcp);
    let mut reader = BufReader::new(tls);
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {bearer}\r\n\r\n");
    let mut samples = Vec::with_capacity(n);
    let warmup = (n / 10).max(50);
    for i in 0..warmup + n {
        let started = Instant::now();
        reader.get_mut().write_all(request.as_bytes())?;
        reader.get_mut().flush()?;
        let status = aivault_bench_harness::read_response(&mut reader)?;
        if !status.starts_with("HTTP/1.1 200") {
            return Err(format!("unexpected answer: {status}").into());
        }
        if i >= warmup {
            samples.push(started.elapsed().as_nanos() as f64 / 1000.0);
        }
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    println!(
        "{{\"n\": {n}, \"p50_us\": {:.1}, \"p90_us\": {:.1}, \"p99_us\": {:.1}, \"mean_us\": {mean:.1}}}",
        at(0.5),
        at(0.9),
        at(0.99)
    );
    Ok(())
}
