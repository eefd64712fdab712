//! The local certificate authority and per-host leaf certificates (rcgen only here).
//!
//! The root is ECDSA P-256; its private key lives only sealed in the store (see `service::ca`).
//! Leaves are fresh P-256 keys, one per host, valid for 24 hours, cached for 12 hours together
//! with their ready TLS server configuration. Concurrent first connections to a new host mint
//! exactly one certificate (moka's `try_get_with` single flight).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::secret::SecretBytes;

/// Why the CA could not do something. Never carries key material.
#[derive(Debug, thiserror::Error, Clone)]
pub enum CaError {
    #[error("certificate generation failed: {0}")]
    Generate(String),
    #[error("the stored CA key does not load: {0}")]
    BadKey(String),
    #[error("cannot build a TLS configuration: {0}")]
    Tls(String),
    #[error("'{0}' is not a host name a certificate can be issued for")]
    BadHost(String),
}

/// A freshly generated root: PEM certificate, PKCS#8 key (to be sealed), subject name.
pub struct NewRoot {
    pub cert_pem: String,
    pub key_pkcs8: SecretBytes,
    pub common_name: String,
}

/// Generates a new root CA valid for ten years.
pub fn generate_root(label: &str) -> Result<NewRoot, CaError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(gen_err)?;
    let common_name = format!("aivault local CA {label}");
    let mut params = root_params(&common_name)?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(3650);
    let cert = params.self_signed(&key).map_err(gen_err)?;
    Ok(NewRoot { cert_pem: cert.pem(), key_pkcs8: SecretBytes::new(key.serialize_der()), common_name })
}

fn root_params(common_name: &str) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.distinguished_name.push(DnType::OrganizationName, "aivault");
    Ok(params)
}

fn gen_err(e: rcgen::Error) -> CaError {
    CaError::Generate(e.to_string())
}

/// A loaded authority that mints and caches leaf configurations.
pub struct Authority {
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    leaves: moka::future::Cache<String, Arc<ServerConfig>>,
    minted: AtomicU64,
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// One stateless ticket key (rotated by rustls every 6 hours) for every leaf: an agent that
    /// reconnects resumes without a new signature, and nothing per session is stored.
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
}

impl Authority {
    /// Loads a root from its PEM certificate, PKCS#8 key and subject name.
    pub fn new(
        cert_pem: &str,
        key_pkcs8: &SecretBytes,
        common_name: &str,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Authority, CaError> {
        use rustls::pki_types::pem::PemObject as _;
        let cert_der =
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| CaError::BadKey(e.to_string()))?;
        let key = KeyPair::try_from(key_pkcs8.expose()).map_err(|e| CaError::BadKey(e.to_string()))?;
        let issuer = Issuer::new(root_params(common_name)?, key);
        let leaves =
            moka::future::Cache::builder().max_capacity(10_000).time_to_live(Duration::from_secs(12 * 3600)).build();
        let ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| CaError::Tls(e.to_string()))?;
        Ok(Authority { cert_der, issuer, leaves, minted: AtomicU64::new(0), provider, ticketer })
    }

    /// The TLS server configuration for `host`, minted on first use and shared afterwards.
    pub async fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, CaError> {
        let host = host.to_ascii_lowercase();
        self.leaves.try_get_with(host.clone(), async { self.mint(&host).map(Arc::new) }).await.map_err(|e| (*e).clone())
    }

    /// How many leaf certificates this authority has minted.
    pub fn minted(&self) -> u64 {
        self.minted.load(Ordering::Relaxed)
    }

    fn mint(&self, host: &str) -> Result<ServerConfig, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(gen_err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let san = match bare.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.try_into().map_err(|_| CaError::BadHost(host.to_owned()))?),
        };
        params.subject_alt_names = vec![san];
        params.distinguished_name.push(DnType::CommonName, bare);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::hours(24);
        let mut serial = [0u8; 16];
        crate::crypto::random_bytes(&mut serial).map_err(|e| CaError::Generate(e.to_string()))?;
        serial[0] &= 0x7f;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer).map_err(gen_err)?;
        let chain = vec![cert.der().clone(), self.cert_der.clone()];
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| CaError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .map_err(|e| CaError::Tls(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config.ticketer = self.ticketer.clone();
        config.send_tls13_tickets = 1;
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        self.minted.fetch_add(1, Ordering::Relaxed);
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority() -> Authority {
        let root = generate_root("test").unwrap();
        Authority::new(&root.cert_pem, &root.key_pkcs8, &root.common_name, crate::proxy::crypto_provider()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_contacts_mint_once() {
        let ca = Arc::new(authority());
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let ca = ca.clone();
            tasks.push(tokio::spawn(async move {
                ca.server_config("api.example.com").await.map(|c| Arc::as_ptr(&c) as usize)
            }));
        }
        let mut ptrs = std::collections::HashSet::new();
        for t in tasks {
            ptrs.insert(t.await.unwrap().unwrap());
        }
        assert_eq!(ptrs.len(), 1);
        assert_eq!(ca.minted(), 1);
        ca.server_config("API.example.com").await.unwrap();
        assert_eq!(ca.minted(), 1, "host names are case-insensitive");
        ca.server_config("127.0.0.1").await.unwrap();
        ca.server_config("under_score.example.com").await.unwrap();
        assert_eq!(ca.minted(), 3);
    }
}
