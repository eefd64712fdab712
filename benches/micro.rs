//! Micro-benchmarks of the per-request work: policy match over the whole registry, each
//! injection strategy, scope resolution and opening a sealed secret.
//! Run with `cargo bench --bench micro`.

use std::hint::black_box;

use aivault::auth::inject::{Target, inject, strip};
use aivault::auth::{AuthConfig, HeaderTemplate, Material, QueryTemplate, Strategy};
use aivault::crypto::{MasterKey, open, seal};
use aivault::policy::{Policy, Rule};
use aivault::registry::Registry;
use aivault::scope::{Context, CredentialCandidate, Scope, resolve};
use aivault::secret::SecretBytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};

fn registry_policy() -> Policy {
    let registry = Registry::builtin().unwrap_or_else(|e| panic!("{e}"));
    let rules: Vec<Rule> = registry.providers().flat_map(|p| p.rules.iter().cloned()).collect();
    Policy::new(rules)
}

fn bench_policy(c: &mut Criterion) {
    let policy = registry_policy();
    let providers = Registry::builtin().map(|r| r.providers().count()).unwrap_or(0);
    let mut g = c.benchmark_group(format!("policy_match_{providers}_providers"));
    g.bench_function("allow", |b| {
        b.iter(|| policy.decide(black_box("api.openai.com"), 443, "POST", "/v1/chat/completions"))
    });
    g.bench_function("deny_path", |b| b.iter(|| policy.decide(black_box("api.openai.com"), 443, "GET", "/v2/unknown")));
    g.bench_function("deny_host", |b| b.iter(|| policy.decide(black_box("unknown.example.com"), 443, "GET", "/")));
    g.finish();
}

fn target() -> Target {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_static("Bearer placeholder"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    Target { path: "/v1/chat/completions".into(), query: Some("a=1".into()), headers }
}

fn bench_inject(c: &mut Criterion) {
    let single = Material::single(SecretBytes::from_str_copy("sk-0123456789abcdef0123456789abcdef"));
    let mut pair = Material::default();
    pair.add("key", &SecretBytes::from_str_copy("k-0123456789"));
    pair.add("token", &SecretBytes::from_str_copy("t-0123456789"));
    let strategies: Vec<(&str, AuthConfig, &Material)> = vec![
        (
            "header",
            AuthConfig::Header { header_name: "authorization".into(), value_template: "Bearer {{secret}}".into() },
            &single,
        ),
        ("query", AuthConfig::Query { param_name: "key".into(), value_template: None }, &single),
        ("path", AuthConfig::Path { prefix_template: "/bot{{secret}}".into() }, &single),
        ("basic", AuthConfig::Basic { username: Some("api".into()), password: Some("{{secret}}".into()) }, &single),
        (
            "multi-header",
            AuthConfig::MultiHeader(vec![
                HeaderTemplate { header_name: "x-key".into(), value_template: "{{key}}".into() },
                HeaderTemplate { header_name: "x-token".into(), value_template: "{{token}}".into() },
            ]),
            &pair,
        ),
        (
            "multi-query",
            AuthConfig::MultiQuery(vec![
                QueryTemplate { param_name: "key".into(), value_template: "{{key}}".into() },
                QueryTemplate { param_name: "token".into(), value_template: "{{token}}".into() },
            ]),
            &pair,
        ),
    ];
    let mut g = c.benchmark_group("inject");
    for (name, auth, material) in &strategies {
        // Compiled once, as the proxy's snapshot does.
        let strategy = Strategy::compile(auth).unwrap_or_else(|e| panic!("{name}: {e}"));
        g.bench_function(*name, |b| {
            b.iter(|| {
                let mut t = target();
                strip(&mut t, &strategy);
                let _ = inject(&mut t, &strategy, material);
                black_box(t)
            })
        });
    }
    g.finish();
}

fn bench_scope(c: &mut Criterion) {
    let (global, ws, group) = (
        Scope::Global,
        Scope::Workspace { workspace_id: "w".into() },
        Scope::Group { workspace_id: "w".into(), group_id: "g".into() },
    );
    let creds = [
        CredentialCandidate { id: "a", scope: &global, secret_ids: vec!["s1"], exact_host: true, manual: false },
        CredentialCandidate { id: "b", scope: &ws, secret_ids: vec!["s2"], exact_host: true, manual: false },
        CredentialCandidate { id: "c", scope: &group, secret_ids: vec!["s3"], exact_host: true, manual: false },
    ];
    let ctx = Context::new(Some("w"), Some("g")).unwrap_or_default();
    c.bench_function("scope_resolve_3_levels", |b| b.iter(|| resolve(black_box(&ctx), &[], &creds, &|_| false)));
}

fn bench_envelope(c: &mut Criterion) {
    let Ok((key, _)) = MasterKey::generate() else { return };
    let Ok(sealed) = seal(&key, b"aad", b"sk-0123456789abcdef0123456789abcdef") else { return };
    c.bench_function("envelope_open", |b| b.iter(|| open(&key, black_box(b"aad"), &sealed)));
}

fn bench_leaf(c: &mut Criterion) {
    let Ok(root) = aivault::ca::generate_root("bench") else { return };
    let provider = aivault::proxy::crypto_provider();
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else { return };
    let mut g = c.benchmark_group("leaf_certificate");
    g.bench_function("mint_cold", |b| {
        b.iter_batched(
            || aivault::ca::Authority::new(&root.cert_pem, &root.key_pkcs8, &root.common_name, provider.clone()),
            |ca| {
                if let Ok(ca) = ca {
                    let _ = rt.block_on(ca.server_config("api.example.com"));
                }
            },
            criterion::BatchSize::SmallInput,
        )
    });
    if let Ok(ca) = aivault::ca::Authority::new(&root.cert_pem, &root.key_pkcs8, &root.common_name, provider) {
        let _ = rt.block_on(ca.server_config("api.example.com"));
        g.bench_function("cached", |b| b.iter(|| rt.block_on(ca.server_config(black_box("api.example.com")))));
    }
    g.finish();
}

fn bench_sigv4(c: &mut Criterion) {
    use aivault::auth::sigv4::{Credentials, Request, Settings, sha256_hex, sign};
    let headers = vec![
        ("host".to_owned(), "bedrock-runtime.us-east-1.amazonaws.com".to_owned()),
        ("content-type".to_owned(), "application/json".to_owned()),
        ("x-amz-date".to_owned(), "20261123T181143Z".to_owned()),
    ];
    let creds = Credentials {
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        session_token: None,
    };
    let mib = vec![7u8; 1024 * 1024];
    let mut g = c.benchmark_group("sigv4_sign");
    for (name, body) in [("empty_body", &[][..]), ("1MiB_body", &mib[..])] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let payload = sha256_hex(black_box(body));
                let req = Request { method: "POST", path: "/model/m%3A0/invoke", query: None, headers: &headers };
                sign(
                    &req,
                    Settings::for_service("bedrock"),
                    &payload,
                    "20261123T181143Z",
                    "us-east-1",
                    "bedrock",
                    &creds,
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_policy, bench_inject, bench_scope, bench_envelope, bench_leaf, bench_sigv4);
criterion_main!(benches);
