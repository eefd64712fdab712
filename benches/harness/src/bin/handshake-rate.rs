//! The W2 ceiling: full TLS 1.3 handshakes per second, client and server in memory on one
//! thread, with a P-256 leaf (what a MITM proxy pays per new agent connection at best).
//! Usage: handshake-rate <seconds>   (prints {"handshakes_per_s": N})

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["bench.test".to_owned()])?.self_signed(&key)?;
    let server = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(cert.der().to_vec())], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))?,
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(cert.der().to_vec()))?;
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        let mut c = rustls::ClientConnection::new(client.clone(), ServerName::try_from("bench.test")?)?;
        let mut s = rustls::ServerConnection::new(server.clone())?;
        while c.is_handshaking() || s.is_handshaking() {
            transfer(&mut c, &mut s)?;
            transfer(&mut s, &mut c)?;
        }
        c.writer().write_all(b"x")?;
        transfer(&mut c, &mut s)?;
        let mut one = [0u8; 1];
        s.reader().read_exact(&mut one)?;
        n += 1;
    }
    println!("{{\"handshakes_per_s\": {:.0}}}", n as f64 / start.elapsed().as_secs_f64());
    Ok(())
}

fn transfer(from: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl rustls::SideData>>, to: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl rustls::SideData>>) -> Result<(), Box<dyn std::error::Error>> {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf)?;
    }
    let mut slice = &buf[..];
    while !slice.is_empty() {
        to.read_tls(&mut slice)?;
        to.process_new_packets()?;
    }
    Ok(())
}
