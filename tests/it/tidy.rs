//! Tidy: the rules ARCHITECTURE.md states, checked against `src/` so they fail loudly.
//!
//! - Imports flow downward through the layers (pure leaves → crypto → store/ca/sandbox → error →
//!   config → service → proxy → console/run → cli → main); a module may import its own layer only among
//!   the pure leaves.
//! - Each external crate with an owner is used only by the module that owns it.
//! - Every file starts with a `//!` header and stays under 800 lines.
//! - In `auth` and `proxy`, a field whose name says it holds a token or secret is not a `String`.
//! - Errors are typed: no `Result<_, String>` and no `Result<_, Response>` anywhere in `src/`, and
//!   the `x-aivault-error` header is named in exactly one place (`proxy/respond.rs`).
//!
//! Each rule's exceptions are listed here by name with the reason; an exception that no longer
//! applies fails the test too, so the list only shrinks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Layer of each top-level module (lower may not import higher).
const LAYERS: &[(&str, u8)] = &[
    ("secret", 0),
    ("scope", 0),
    ("policy", 0),
    ("auth", 0),
    ("registry", 0),
    ("audit", 0),
    ("percent", 0),
    ("refusal", 0),
    ("time", 0),
    ("proposal", 0),
    ("source", 0),
    ("crypto", 1),
    ("store", 2),
    ("ca", 2),
    ("sandbox", 2),
    // The top-level error wraps every module's error type; config returns it.
    ("error", 3),
    ("config", 4),
    ("service", 5),
    ("proxy", 6),
    // The approval console uses the proxy's upstream client for OAuth token exchanges.
    ("console", 7),
    ("run", 7),
    ("cli", 8),
    ("main", 9),
    ("lib", 9),
];

/// Layering exceptions that exist today: (importer, imported, why). Tracked in issue 9.
const LAYER_EXCEPTIONS: &[(&str, &str, &str)] =
    &[("auth", "crypto", "SigV4 and OAuth2 hash with crypto's helpers; move the digests to a leaf")];

/// External crates with an owner: (crate as written in paths, owning module or modules `a|b`).
const OWNED: &[(&str, &str)] = &[
    ("redb", "store"),
    ("postgres", "store"),
    ("tokio_postgres_rustls", "store"),
    ("rcgen", "ca"),
    // The two HTTP servers: the proxy and the approval console.
    ("hyper", "proxy|console"),
    ("hyper_util", "proxy|console"),
    ("maud", "console"),
    ("tokio_rustls", "proxy"),
    ("nix", "sandbox"),
    ("flate2", "proxy"),
    ("brotli", "proxy"),
    ("zstd", "proxy"),
    ("aho_corasick", "proxy"),
    ("ring", "crypto"),
];

/// Ownership exceptions that exist today: (module, crate, why). Tracked in issue 9.
const OWNED_EXCEPTIONS: &[(&str, &str, &str)] =
    &[("auth", "ring", "SigV4's HMAC-SHA256 and PKCE's SHA-256 call ring directly")];

/// Fields whose name reads like a secret but hold something else: (file, field, what it holds).
const FIELD_EXCEPTIONS: &[(&str, &str, &str)] =
    &[("src/auth/mod.rs", "password", "Basic's password *template* (`{{password}}`), never a value")];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out.sort();
    out
}

/// The top-level module a source file belongs to.
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join("src")).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// Code without comments and string literals (good enough for paths in this code base).
fn code_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_test = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            in_test = true;
        }
        if in_test {
            break;
        }
        let without_comment = match t.find("//") {
            Some(i) => &t[..i],
            None => t,
        };
        let mut code = String::new();
        let mut in_str = false;
        let mut prev = ' ';
        for c in without_comment.chars() {
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                code.push(c);
            }
            prev = c;
        }
        out.push(code);
    }
    out
}

/// Top-level crate modules a line of code names (`crate::x`, `crate::{x, y::z}`, `aivault::x`).
fn crate_refs(line: &str, root: &str) -> Vec<String> {
    let mut out = Vec::new();
    let needle = format!("{root}::");
    let mut rest = line;
    while let Some(i) = rest.find(&needle) {
        let before = rest[..i].chars().last();
        rest = &rest[i + needle.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            out.push(name);
        }
    }
    out
}

fn extern_refs(line: &str, krate: &str) -> bool {
    let needle = format!("{krate}::");
    line.match_indices(&needle).any(|(i, _)| {
        let before = line[..i].chars().last();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
    })
}

#[test]
fn imports_flow_down_the_layers() {
    let mut violations = BTreeSet::new();
    let mut used_exceptions = BTreeSet::new();
    for path in sources() {
        let module = module_of(&path);
        let Some(mine) = layer(&module) else { panic!("{}: module {module} has no layer in tidy.rs", path.display()) };
        let text = std::fs::read_to_string(&path).unwrap();
        let root = if module == "main" { "aivault" } else { "crate" };
        for line in code_lines(&text) {
            for target in crate_refs(&line, root) {
                let Some(theirs) = layer(&target) else { continue };
                if target == module || module == "lib" {
                    continue;
                }
                let upward = theirs > mine || (theirs == mine && mine != 0);
                if !upward {
                    continue;
                }
                if LAYER_EXCEPTIONS.iter().any(|(a, b, _)| *a == module && *b == target) {
                    used_exceptions.insert((module.clone(), target.clone()));
                    continue;
                }
                violations
                    .insert(format!("{} ({module}, layer {mine}) imports {target} (layer {theirs})", path.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports that go up the layers:\n{}",
        violations.into_iter().collect::<Vec<_>>().join("\n")
    );
    for (a, b, why) in LAYER_EXCEPTIONS {
        assert!(
            used_exceptions.contains(&((*a).to_owned(), (*b).to_owned())),
            "stale exception {a} -> {b} ({why}): remove it"
        );
    }
}

#[test]
fn owned_crates_stay_with_their_owner() {
    let mut violations = BTreeSet::new();
    let mut used_exceptions = BTreeSet::new();
    for path in sources() {
        let module = module_of(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        for line in code_lines(&text) {
            for (krate, owner) in OWNED {
                if owner.split('|').any(|o| o == module) || !extern_refs(&line, krate) {
                    continue;
                }
                if OWNED_EXCEPTIONS.iter().any(|(m, k, _)| *m == module && k == krate) {
                    used_exceptions.insert((module.clone(), (*krate).to_owned()));
                    continue;
                }
                violations.insert(format!("{}: {krate} belongs to {owner}", path.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "crates used outside their owner:\n{}",
        violations.into_iter().collect::<Vec<_>>().join("\n")
    );
    for (m, k, why) in OWNED_EXCEPTIONS {
        assert!(
            used_exceptions.contains(&((*m).to_owned(), (*k).to_owned())),
            "stale exception {m} uses {k} ({why}): remove it"
        );
    }
}

#[test]
fn errors_are_typed_and_the_refusal_header_is_written_once() {
    let mut violations = Vec::new();
    let mut header_sites = Vec::new();
    for path in sources() {
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in code_lines(&text).iter().enumerate() {
            let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            for bad in [",String>", ",Response>", ",Response<"] {
                if compact.contains("Result<") && compact.contains(bad) {
                    violations.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
        // String literals are stripped by code_lines; look at the raw text outside comments.
        for (n, line) in text.lines().enumerate() {
            let t = line.trim_start();
            if !t.starts_with("//") && t.contains("\"x-aivault-error\"") {
                header_sites.push(format!("{}:{}", path.display(), n + 1));
            }
        }
    }
    assert!(violations.is_empty(), "untyped errors (use a module error type):\n{}", violations.join("\n"));
    assert!(
        header_sites.len() == 1 && header_sites[0].contains("proxy/respond.rs"),
        "x-aivault-error must be named once, in proxy/respond.rs: {header_sites:?}"
    );
}

#[test]
fn files_have_a_header_and_stay_small() {
    for path in sources() {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("//!"), "{} has no //! header saying what it is for", path.display());
        let lines = text.lines().count();
        assert!(lines <= 800, "{} has {lines} lines; split it (limit 800)", path.display());
    }
}

#[test]
fn tokens_and_secrets_are_not_plain_strings_in_auth_and_proxy() {
    let mut violations = Vec::new();
    for path in sources() {
        let module = module_of(&path);
        if module != "auth" && module != "proxy" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for line in code_lines(&text) {
            let t = line.trim().trim_start_matches("pub ").trim_start_matches("pub(crate) ");
            let Some((name, ty)) = t.split_once(':') else { continue };
            let name = name.trim();
            let sensitive = ["token", "secret", "password", "api_key"].iter().any(|w| name.contains(w))
                && !name.contains("hash")
                && !name.ends_with("_url")
                && !name.ends_with("_endpoint")
                && !name.ends_with("_name")
                && !name.ends_with("_id")
                && !FIELD_EXCEPTIONS.iter().any(|(file, field, _)| path.ends_with(file) && *field == name);
            let plain = ty.trim().trim_end_matches(',').trim() == "String" || ty.trim().starts_with("Option<String>");
            if sensitive && plain && name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                violations.push(format!("{}: field `{name}` holds a secret in a plain String", path.display()));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
