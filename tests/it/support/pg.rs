//! A real PostgreSQL for the tests: a throwaway cluster (`initdb` into a temp dir, started with
//! `pg_ctl` on a free loopback port, as the `postgres` user when the tests run as root, since the
//! server refuses root), stopped when dropped. Never a mock database.
//!
//! With `AIVAULT_TEST_STORE=postgres` every `TestVault` gets its own database on one shared
//! cluster, so the whole suite runs against PostgreSQL too (`scripts/test` runs both passes).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A running cluster.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// Extra server options (TLS).
    extra: String,
}

fn pg_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: scripts/test installs Debian's postgresql")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("no PostgreSQL server binaries under /usr/lib/postgresql")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// `program args` as the server's user.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Cluster {
    pub fn start() -> Cluster {
        let c = Cluster::init();
        c.pg_ctl_start();
        c
    }

    /// A cluster that speaks TLS with a certificate for `localhost` from a throwaway CA; returns
    /// the CA's PEM path too.
    pub fn start_tls() -> (Cluster, PathBuf) {
        let mut c = Cluster::init();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "aivault test database CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&key, &issuer).unwrap();
        let data = c.data();
        std::fs::write(data.join("server.crt"), leaf.pem()).unwrap();
        std::fs::write(data.join("server.key"), key.serialize_pem()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
        if is_root() {
            for f in ["server.crt", "server.key"] {
                assert!(Command::new("chown").arg("postgres:postgres").arg(data.join(f)).status().unwrap().success());
            }
        }
        let ca_path = c.dir.path().join("db-ca.pem");
        std::fs::write(&ca_path, ca_cert.pem()).unwrap();
        c.extra = "-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key".into();
        c.pg_ctl_start();
        (c, ca_path)
    }

    fn init() -> Cluster {
        let bin = pg_bin();
        let dir = tempfile::Builder::new().prefix("aivault-pg-").tempdir().unwrap();
        let data = dir.path().join("data");
        if is_root() {
            let ok = Command::new("chown").args(["postgres:postgres"]).arg(dir.path()).status().unwrap().success();
            assert!(ok, "cannot hand the cluster directory to the postgres user");
        }
        let out = as_server_user(&bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        Cluster { dir, bin, port: free_port(), extra: String::new() }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// fsync is off for speed (a server crash keeps the OS's copy of the WAL); commits stay
    /// synchronous, so a committed transaction survives `stop` (the outage test counts on it).
    fn pg_ctl_start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
             -c max_connections=300 {}",
            self.port,
            self.dir.path().display(),
            self.extra
        );
        let out = as_server_user(&self.bin.join("pg_ctl"))
            .args(["-D"])
            .arg(self.data())
            .args(["-o", &opts, "-l"])
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "30", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    /// Stops the server (immediately: like a crash or an outage).
    pub fn stop(&self) {
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .args(["-D"])
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }

    /// Starts it again on the same port.
    pub fn restart(&self) {
        self.pg_ctl_start();
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A fresh, empty database; returns its URL.
    pub fn database(&self) -> String {
        let name = format!("t_{}", rand_suffix());
        let mut admin =
            postgres::Client::connect(&self.url("postgres"), postgres::NoTls).expect("connect to the test cluster");
        admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("create database");
        self.url(&name)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// Whether this run drives every vault through PostgreSQL.
pub fn matrix() -> bool {
    std::env::var("AIVAULT_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// The one cluster the matrix pass shares. A watchdog stops it when the test process exits
/// (statics are never dropped).
pub fn shared() -> &'static Cluster {
    static SHARED: OnceLock<Cluster> = OnceLock::new();
    SHARED.get_or_init(|| {
        let c = Cluster::start();
        let stop = format!(
            "{} {} -D {} -m immediate stop >/dev/null 2>&1; rm -rf {}",
            if is_root() { "runuser -u postgres --" } else { "" },
            c.bin.join("pg_ctl").display(),
            c.data().display(),
            c.dir.path().display()
        );
        let script = format!("while kill -0 {} 2>/dev/null; do sleep 0.5; done; {stop}", std::process::id());
        let _ = Command::new("sh").args(["-c", &script]).stdin(std::process::Stdio::null()).spawn();
        c
    })
}

/// Every stored byte of a database (records and audit bodies), for sentinel scans.
pub fn dump(url: &str) -> Vec<u8> {
    let mut c = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    let mut out = Vec::new();
    for row in c.query("SELECT key, value FROM aivault_kv", &[]).unwrap_or_default() {
        out.extend(row.get::<_, Vec<u8>>(0));
        out.extend(row.get::<_, Vec<u8>>(1));
    }
    for row in c.query("SELECT body FROM aivault_audit", &[]).unwrap_or_default() {
        out.extend(row.get::<_, Vec<u8>>(0));
    }
    out
}
