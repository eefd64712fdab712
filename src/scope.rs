//! Scopes and credential resolution. Pure: no I/O, no clock, no store.
//!
//! A secret, credential or binding lives at one scope: global, a workspace, or a group inside a
//! workspace. An execution context (the agent's workspace and group) sees the group level first,
//! then the workspace, then global; the most specific level that has a candidate wins. At a
//! level, a capability binding beats a provider credential, and a credential whose secret is
//! attached to the context's group counts at group level. Two equal candidates at the winning
//! level are an error that names both: the vault never guesses.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a secret, credential or binding lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum Scope {
    Global,
    Workspace { workspace_id: String },
    Group { workspace_id: String, group_id: String },
}

/// Why scope arguments were rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScopeError {
    #[error("unknown scope '{0}': use global, workspace or group")]
    UnknownScope(String),
    #[error("--scope workspace needs --workspace-id")]
    WorkspaceIdMissing,
    #[error("--scope group needs both --workspace-id and --group-id")]
    GroupIdsMissing,
    #[error("--group-id needs --workspace-id: a group lives inside a workspace")]
    GroupWithoutWorkspace,
    #[error("--scope global takes no --workspace-id or --group-id")]
    GlobalWithIds,
    #[error("--scope workspace takes no --group-id (did you mean --scope group?)")]
    WorkspaceWithGroup,
    #[error("invalid {what} '{value}': use 1-64 characters of letters, digits, '.', '_' or '-'")]
    BadId { what: &'static str, value: String },
}

impl Scope {
    /// Builds a scope from CLI-style arguments. `scope` defaults to the most specific level the
    /// ids allow when it is `None`.
    pub fn from_args(scope: Option<&str>, workspace: Option<&str>, group: Option<&str>) -> Result<Scope, ScopeError> {
        if let Some(w) = workspace {
            check_id("workspace id", w)?;
        }
        if let Some(g) = group {
            check_id("group id", g)?;
        }
        let scope = match scope {
            Some(s) => s.to_ascii_lowercase(),
            None => match (workspace, group) {
                (None, None) => "global".to_owned(),
                (Some(_), None) => "workspace".to_owned(),
                (_, Some(_)) => "group".to_owned(),
            },
        };
        match (scope.as_str(), workspace, group) {
            ("global", None, None) => Ok(Scope::Global),
            ("global", _, _) => Err(ScopeError::GlobalWithIds),
            ("workspace", Some(w), None) => Ok(Scope::Workspace { workspace_id: w.to_owned() }),
            ("workspace", None, _) => Err(ScopeError::WorkspaceIdMissing),
            ("workspace", Some(_), Some(_)) => Err(ScopeError::WorkspaceWithGroup),
            ("group", Some(w), Some(g)) => Ok(Scope::Group { workspace_id: w.to_owned(), group_id: g.to_owned() }),
            ("group", None, Some(_)) => Err(ScopeError::GroupWithoutWorkspace),
            ("group", _, None) => Err(ScopeError::GroupIdsMissing),
            (other, _, _) => Err(ScopeError::UnknownScope(other.to_owned())),
        }
    }

    /// Short name of the level: `global`, `workspace` or `group`.
    pub fn level_name(&self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Workspace { .. } => "workspace",
            Scope::Group { .. } => "group",
        }
    }

    /// A stable key usable inside store keys: `global`, `ws/<w>`, `group/<w>/<g>`.
    pub fn key(&self) -> String {
        match self {
            Scope::Global => "global".to_owned(),
            Scope::Workspace { workspace_id } => format!("ws/{workspace_id}"),
            Scope::Group { workspace_id, group_id } => format!("group/{workspace_id}/{group_id}"),
        }
    }

    pub fn workspace_id(&self) -> Option<&str> {
        match self {
            Scope::Global => None,
            Scope::Workspace { workspace_id } | Scope::Group { workspace_id, .. } => Some(workspace_id),
        }
    }

    pub fn group_id(&self) -> Option<&str> {
        match self {
            Scope::Group { group_id, .. } => Some(group_id),
            _ => None,
        }
    }

    /// Whether something scoped at `reader` (a credential, a binding, a group attachment) may read
    /// a secret scoped at `self`: every context that sees the reader must also see the secret.
    pub fn readable_from(&self, reader: &Scope) -> bool {
        match (self, reader) {
            (Scope::Global, _) => true,
            (Scope::Workspace { workspace_id: a }, Scope::Workspace { workspace_id: b })
            | (Scope::Workspace { workspace_id: a }, Scope::Group { workspace_id: b, .. }) => a == b,
            (s, r) => s == r,
        }
    }

    /// The level at which this scope is visible from `ctx`, or `None` when it is not visible.
    fn level_for(&self, ctx: &Context) -> Option<Level> {
        match self {
            Scope::Global => Some(Level::Global),
            Scope::Workspace { workspace_id } => {
                (ctx.workspace_id.as_deref() == Some(workspace_id)).then_some(Level::Workspace)
            }
            Scope::Group { workspace_id, group_id } => (ctx.workspace_id.as_deref() == Some(workspace_id)
                && ctx.group_id.as_deref() == Some(group_id))
            .then_some(Level::Group),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::Workspace { workspace_id } => write!(f, "workspace:{workspace_id}"),
            Scope::Group { workspace_id, group_id } => write!(f, "group:{workspace_id}/{group_id}"),
        }
    }
}

/// Checks an identifier used for workspaces, groups, names of agents and the like.
pub fn check_id(what: &'static str, value: &str) -> Result<(), ScopeError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok { Ok(()) } else { Err(ScopeError::BadId { what, value: value.to_owned() }) }
}

/// The execution context of a caller: which workspace and group it acts in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Context {
    pub workspace_id: Option<String>,
    pub group_id: Option<String>,
}

impl Context {
    pub fn new(workspace: Option<&str>, group: Option<&str>) -> Result<Context, ScopeError> {
        if let Some(w) = workspace {
            check_id("workspace id", w)?;
        }
        if let Some(g) = group {
            check_id("group id", g)?;
            if workspace.is_none() {
                return Err(ScopeError::GroupWithoutWorkspace);
            }
        }
        Ok(Context { workspace_id: workspace.map(str::to_owned), group_id: group.map(str::to_owned) })
    }

    pub fn global() -> Context {
        Context::default()
    }

    /// The scope a caller in this context writes into: its group, else its workspace, else global.
    pub fn own_scope(&self) -> Scope {
        match (&self.workspace_id, &self.group_id) {
            (Some(w), Some(g)) => Scope::Group { workspace_id: w.clone(), group_id: g.clone() },
            (Some(w), None) => Scope::Workspace { workspace_id: w.clone() },
            (None, _) => Scope::Global,
        }
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.workspace_id, &self.group_id) {
            (None, _) => f.write_str("global"),
            (Some(w), None) => write!(f, "workspace {w}"),
            (Some(w), Some(g)) => write!(f, "group {w}/{g}"),
        }
    }
}

/// The resolution levels, most specific first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Group,
    Workspace,
    Global,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Group => "group",
            Level::Workspace => "workspace",
            Level::Global => "global",
        })
    }
}

/// A capability binding that could serve the request: a secret bound at a scope.
#[derive(Clone, Debug)]
pub struct BindingCandidate<'a> {
    pub secret_id: &'a str,
    pub scope: &'a Scope,
}

/// A provider credential that could serve the request.
#[derive(Clone, Debug)]
pub struct CredentialCandidate<'a> {
    pub id: &'a str,
    pub scope: &'a Scope,
    /// Ids of the secrets the credential reads; any of them attached to the context's group
    /// lifts the credential to group level.
    pub secret_ids: Vec<&'a str>,
    /// One of its hosts names the request's host exactly (not through a wildcard).
    pub exact_host: bool,
    /// Created by hand (`credential create`), not provisioned from the registry.
    pub manual: bool,
}

impl CredentialCandidate<'_> {
    /// Within one level: an exact host beats a wildcard, then a manual credential beats an
    /// auto-provisioned one.
    fn rank(&self) -> u8 {
        u8::from(self.exact_host) * 2 + u8::from(self.manual)
    }
}

/// What resolution picked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved<'a> {
    Binding { secret_id: &'a str, level: Level },
    Credential { id: &'a str, level: Level },
}

/// Why nothing could be picked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no credential is available for context {0}")]
    NoCredential(String),
    #[error("ambiguous: two {kind}s at {level} level ({first}, {second}); remove one or scope it")]
    Ambiguous { kind: &'static str, level: Level, first: String, second: String },
}

/// Picks the binding or credential for `ctx`. `attached(secret_id)` says whether a secret is
/// attached to the context's group (only asked when the context has a group).
pub fn resolve<'a>(
    ctx: &Context,
    bindings: &[BindingCandidate<'a>],
    credentials: &[CredentialCandidate<'a>],
    attached: &dyn Fn(&str) -> bool,
) -> Result<Resolved<'a>, ResolveError> {
    let in_group = ctx.group_id.is_some();
    for level in [Level::Group, Level::Workspace, Level::Global] {
        let at_level: Vec<&BindingCandidate<'a>> =
            bindings.iter().filter(|b| b.scope.level_for(ctx) == Some(level)).collect();
        match at_level.as_slice() {
            [one] => return Ok(Resolved::Binding { secret_id: one.secret_id, level }),
            [a, b, ..] => {
                return Err(ResolveError::Ambiguous {
                    kind: "binding",
                    level,
                    first: format!("vault:secret:{} ({})", a.secret_id, a.scope),
                    second: format!("vault:secret:{} ({})", b.secret_id, b.scope),
                });
            }
            [] => {}
        }
        let creds: Vec<&CredentialCandidate<'a>> = credentials
            .iter()
            .filter(|c| {
                let own = c.scope.level_for(ctx);
                let lifted =
                    in_group && own.is_some() && c.secret_ids.iter().any(|s| attached(s)) && level == Level::Group;
                own == Some(level) || lifted
            })
            .collect();
        let best = creds.iter().map(|c| c.rank()).max().unwrap_or(0);
        let creds: Vec<&CredentialCandidate<'a>> = creds.into_iter().filter(|c| c.rank() == best).collect();
        match creds.as_slice() {
            [one] => return Ok(Resolved::Credential { id: one.id, level }),
            [a, b, ..] => {
                return Err(ResolveError::Ambiguous {
                    kind: "credential",
                    level,
                    first: a.id.to_owned(),
                    second: b.id.to_owned(),
                });
            }
            [] => {}
        }
    }
    Err(ResolveError::NoCredential(ctx.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(w: &str) -> Scope {
        Scope::Workspace { workspace_id: w.into() }
    }
    fn grp(w: &str, g: &str) -> Scope {
        Scope::Group { workspace_id: w.into(), group_id: g.into() }
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn from_args_table() {
        let cases: Vec<(Option<&str>, Option<&str>, Option<&str>, Result<Scope, ScopeError>)> = vec![
            (Some("global"), None, None, Ok(Scope::Global)),
            (None, None, None, Ok(Scope::Global)),
            (Some("workspace"), Some("w"), None, Ok(ws("w"))),
            (Some("group"), Some("w"), Some("g"), Ok(grp("w", "g"))),
            (None, Some("w"), Some("g"), Ok(grp("w", "g"))),
            (Some("workspace"), None, None, Err(ScopeError::WorkspaceIdMissing)),
            (Some("group"), Some("w"), None, Err(ScopeError::GroupIdsMissing)),
            (Some("group"), None, Some("g"), Err(ScopeError::GroupWithoutWorkspace)),
            (Some("global"), Some("w"), None, Err(ScopeError::GlobalWithIds)),
            (Some("team"), None, None, Err(ScopeError::UnknownScope("team".into()))),
            (
                Some("workspace"),
                Some("bad id"),
                None,
                Err(ScopeError::BadId { what: "workspace id", value: "bad id".into() }),
            ),
        ];
        for (scope, w, g, want) in cases {
            assert_eq!(Scope::from_args(scope, w, g), want, "{scope:?} {w:?} {g:?}");
        }
    }

    #[test]
    fn readable_from_table() {
        let cases = [
            (Scope::Global, grp("w", "g"), true),
            (Scope::Global, Scope::Global, true),
            (ws("w"), ws("w"), true),
            (ws("w"), grp("w", "g"), true),
            (ws("w"), Scope::Global, false),
            (ws("w"), ws("x"), false),
            (grp("w", "g"), grp("w", "g"), true),
            (grp("w", "g"), grp("w", "h"), false),
            (grp("w", "g"), ws("w"), false),
        ];
        for (secret, reader, want) in cases {
            assert_eq!(secret.readable_from(&reader), want, "{secret} read from {reader}");
        }
    }

    struct Case {
        name: &'static str,
        ctx: Context,
        bindings: Vec<(&'static str, Scope)>,
        creds: Vec<(&'static str, Scope, &'static str)>,
        attached: &'static [&'static str],
        want: Result<&'static str, &'static str>,
    }

    fn ctx(w: Option<&str>, g: Option<&str>) -> Context {
        Context::new(w, g).unwrap()
    }

    /// Within a level: an exact host beats a wildcard, then manual beats auto-provisioned; a tie
    /// on both is ambiguous.
    #[test]
    fn within_a_level_exact_then_manual_wins() {
        let global = Scope::Global;
        let c = |id: &'static str, exact_host: bool, manual: bool| CredentialCandidate {
            id,
            scope: &global,
            secret_ids: vec![],
            exact_host,
            manual,
        };
        let never = |_: &str| false;
        let pick = |cands: Vec<CredentialCandidate<'_>>| match resolve(&ctx(None, None), &[], &cands, &never) {
            Ok(Resolved::Credential { id, .. }) => id.to_owned(),
            Ok(other) => format!("{other:?}"),
            Err(ResolveError::Ambiguous { .. }) => "ambiguous".to_owned(),
            Err(e) => e.to_string(),
        };
        assert_eq!(pick(vec![c("shopify", false, false), c("my-shopify", true, true)]), "my-shopify");
        assert_eq!(pick(vec![c("wild-manual", false, true), c("exact-registry", true, false)]), "exact-registry");
        assert_eq!(pick(vec![c("reg", true, false), c("manual", true, true)]), "manual");
        assert_eq!(pick(vec![c("a", true, true), c("b", true, true)]), "ambiguous");
    }

    #[test]
    fn resolution_table() {
        let cases = vec![
            Case {
                name: "global only, global context",
                ctx: ctx(None, None),
                bindings: vec![],
                creds: vec![("openai", Scope::Global, "s1")],
                attached: &[],
                want: Ok("cred:openai"),
            },
            Case {
                name: "group beats workspace beats global",
                ctx: ctx(Some("w"), Some("g")),
                bindings: vec![],
                creds: vec![
                    ("c-global", Scope::Global, "s1"),
                    ("c-ws", ws("w"), "s2"),
                    ("c-group", grp("w", "g"), "s3"),
                ],
                attached: &[],
                want: Ok("cred:c-group"),
            },
            Case {
                name: "workspace context falls back past missing group",
                ctx: ctx(Some("w"), Some("g")),
                bindings: vec![],
                creds: vec![("c-global", Scope::Global, "s1"), ("c-ws", ws("w"), "s2")],
                attached: &[],
                want: Ok("cred:c-ws"),
            },
            Case {
                name: "falls back to global",
                ctx: ctx(Some("w"), Some("g")),
                bindings: vec![],
                creds: vec![("c-global", Scope::Global, "s1"), ("c-other", ws("other"), "s2")],
                attached: &[],
                want: Ok("cred:c-global"),
            },
            Case {
                name: "other workspace's credential is invisible",
                ctx: ctx(Some("w"), None),
                bindings: vec![],
                creds: vec![("c-other", ws("other"), "s2")],
                attached: &[],
                want: Err("none"),
            },
            Case {
                name: "group credential invisible to workspace context",
                ctx: ctx(Some("w"), None),
                bindings: vec![],
                creds: vec![("c-group", grp("w", "g"), "s3")],
                attached: &[],
                want: Err("none"),
            },
            Case {
                name: "binding beats credential at the same level",
                ctx: ctx(Some("w"), None),
                bindings: vec![("sb", ws("w"))],
                creds: vec![("c-ws", ws("w"), "s2")],
                attached: &[],
                want: Ok("bind:sb"),
            },
            Case {
                name: "more specific credential beats less specific binding",
                ctx: ctx(Some("w"), Some("g")),
                bindings: vec![("sb", ws("w"))],
                creds: vec![("c-group", grp("w", "g"), "s3")],
                attached: &[],
                want: Ok("cred:c-group"),
            },
            Case {
                name: "attached global secret counts at group level",
                ctx: ctx(Some("w"), Some("g")),
                bindings: vec![],
                creds: vec![("c-global", Scope::Global, "s1"), ("c-ws", ws("w"), "s2")],
                attached: &["s1"],
                want: Ok("cred:c-global"),
            },
            Case {
                name: "attachment ignored without a group in context",
                ctx: ctx(Some("w"), None),
                bindings: vec![],
                creds: vec![("c-global", Scope::Global, "s1"), ("c-ws", ws("w"), "s2")],
                attached: &["s1"],
                want: Ok("cred:c-ws"),
            },
            Case {
                name: "two credentials at winning level are ambiguous",
                ctx: ctx(None, None),
                bindings: vec![],
                creds: vec![("a", Scope::Global, "s1"), ("b", Scope::Global, "s2")],
                attached: &[],
                want: Err("ambiguous:a,b"),
            },
            Case {
                name: "ambiguity below the winning level does not matter",
                ctx: ctx(Some("w"), None),
                bindings: vec![],
                creds: vec![("a", Scope::Global, "s1"), ("b", Scope::Global, "s2"), ("c", ws("w"), "s3")],
                attached: &[],
                want: Ok("cred:c"),
            },
            Case {
                name: "two bindings at a level are ambiguous",
                ctx: ctx(None, None),
                bindings: vec![("x", Scope::Global), ("y", Scope::Global)],
                creds: vec![],
                attached: &[],
                want: Err("ambiguous:vault:secret:x (global),vault:secret:y (global)"),
            },
        ];
        for case in cases {
            let bindings: Vec<BindingCandidate<'_>> =
                case.bindings.iter().map(|(s, scope)| BindingCandidate { secret_id: s, scope }).collect();
            let creds: Vec<CredentialCandidate<'_>> = case
                .creds
                .iter()
                .map(|(id, scope, s)| CredentialCandidate {
                    id,
                    scope,
                    secret_ids: vec![*s],
                    exact_host: false,
                    manual: false,
                })
                .collect();
            let attached = case.attached;
            let got = resolve(&case.ctx, &bindings, &creds, &|s| attached.contains(&s));
            let got = match got {
                Ok(Resolved::Credential { id, .. }) => Ok(format!("cred:{id}")),
                Ok(Resolved::Binding { secret_id, .. }) => Ok(format!("bind:{secret_id}")),
                Err(ResolveError::NoCredential(_)) => Err("none".to_owned()),
                Err(ResolveError::Ambiguous { first, second, .. }) => Err(format!("ambiguous:{first},{second}")),
            };
            let want = case.want.map(str::to_owned).map_err(str::to_owned);
            assert_eq!(got, want, "{}", case.name);
        }
    }
}
