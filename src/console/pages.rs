//! The console's HTML, server-rendered with maud (escaped by construction). No inline script or
//! style: `console.css` and `console.js` are served from `/static/`, so the CSP can forbid both.
//!
//! Architecture invariant: no page renders a stored value. The one exception is a value the
//! agent itself supplied in a pending proposal, shown masked so the person can confirm it;
//! after a decision it is gone from every page.

use maud::{DOCTYPE, Markup, html};

use super::presets::Preset;
use crate::proposal::Action;
use crate::service::proposals::{ProposalView, SlotView};

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · aivault" }
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                header.bar {
                    span.brand { "aivault" }
                    span.sub { "approval console" }
                }
                main { (body) }
                footer { "Served on this machine only. Values you type are stored encrypted and never shown again." }
            }
        }
    }
}

/// A short page: an outcome, an error, or what to do next.
pub fn message(title: &str, text: &str, hint: Option<&str>, back: Option<&str>) -> Markup {
    layout(
        title,
        html! {
            section.card {
                h1 { (title) }
                p { (text) }
                @if let Some(h) = hint { p.hint { (h) } }
                @if let Some(b) = back { p { a.button href=(b) { "Back to the proposal" } } }
            }
        },
    )
}

/// The hop from a spent review link to the proposal page (a same-site navigation).
pub fn opening(target: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="referrer" content="same-origin";
                meta http-equiv="refresh" content={"0;url=" (target)};
                title { "Opening · aivault" }
                link rel="stylesheet" href="/static/console.css";
            }
            body { main { section.card { p { "Opening the proposal… " a href=(target) { "continue" } } } } }
        }
    }
}

/// After Connect: one link to the provider (a form may not redirect off-site under the CSP).
pub fn continue_to(key: &str, url: &str, host: &str) -> Markup {
    layout(
        "Connect",
        html! {
            section.card {
                h1 { "Connect " code { (key) } }
                p { "Sign in at " strong { (host) } " and allow access. You will come back here." }
                p { a.button.primary id="continue" href=(url) rel="noreferrer" { "Continue to " (host) } }
            }
        },
    )
}

/// What the page shows about one proposal (the agent's own values, masked, while pending).
pub struct ProposalPage<'a> {
    pub view: &'a ProposalView,
    pub csrf: &'a str,
    pub agent_values: &'a [(String, String)],
    pub presets: &'a [Preset],
    pub notice: Option<&'a str>,
    pub error: Option<&'a str>,
}

pub fn proposal(p: &ProposalPage<'_>) -> Markup {
    let v = p.view;
    let pending = v.status == "pending";
    let scope = match (&v.workspace_id, &v.group_id) {
        (Some(w), Some(g)) => format!("group {w}/{g}"),
        (Some(w), None) => format!("workspace {w}"),
        _ => "global scope".to_owned(),
    };
    let statics: Vec<&SlotView> =
        v.credentials.iter().filter(|s| s.slot.action == Action::Set && s.kind == "static").collect();
    let oauth: Vec<&SlotView> =
        v.credentials.iter().filter(|s| s.slot.action == Action::Set && s.kind == "oauth").collect();
    let deletes: Vec<&SlotView> = v.credentials.iter().filter(|s| s.slot.action == Action::Delete).collect();
    layout(
        "Review request",
        html! {
            section.card.summary {
                p.status { span class={"badge " (v.status)} { (v.status) } }
                h1 { "Agent " strong { (v.agent) } " asks for access" }
                p.meta { "Lands in " (scope) " · raised " (when(&v.created_at)) " · expires " (when(&v.expires_at)) }
                @if let Some(m) = &v.message { blockquote { (m) } }
                @if let Some(n) = p.notice { p.notice role="status" { (n) } }
                @if let Some(e) = p.error { p.error role="alert" { (e) } }
            }
            @if !oauth.is_empty() {
                (preset_lists(p.presets))
                @for s in &oauth { (oauth_slot(s, p, pending)) }
            }
            @if !v.capabilities.is_empty() {
                section.card {
                    h2 { "Capabilities requested" }
                    table.caps {
                        thead { tr { th { "Capability" } th { "Hosts" } th { "Methods" } th { "Paths" } th { "Injects" } } }
                        tbody {
                            @for c in &v.capabilities {
                                tr {
                                    td data-label="Capability" { code { (c.id) } }
                                    td data-label="Hosts" { (c.hosts.join(", ")) }
                                    td data-label="Methods" { @if c.methods.is_empty() { "any" } @else { (c.methods.join(", ")) } }
                                    td data-label="Paths" { @if c.paths.is_empty() { "/" } @else { (c.paths.join(", ")) } }
                                    td data-label="Injects" { (c.auth.kind) " from " code { (c.secret) } }
                                }
                            }
                        }
                    }
                }
            }
            form.card method="post" action={"/proposals/" (v.id) "/decide"} id="decide" {
                input type="hidden" name="csrf" value=(p.csrf);
                @if !statics.is_empty() {
                    h2 { "Credentials" }
                    @for s in &statics { (static_slot(s, p, pending)) }
                }
                @if !deletes.is_empty() {
                    h2 { "Removals" }
                    @for s in &deletes {
                        div.slot.delete {
                            h3 { "Delete " code { (s.slot.key) } }
                            @if s.exists == Some(false) { p.warn { "No such secret exists any more." } }
                            @for w in &s.warnings { p.warn { (w) } }
                        }
                    }
                }
                @if pending {
                    label.reason { "Note (optional, recorded with the decision)"
                        input type="text" name="reason" maxlength="200" autocomplete="off";
                    }
                    div.actions {
                        button.primary type="submit" name="decision" value="allow" id="allow" { "Allow" }
                        button.danger type="submit" name="decision" value="deny" id="deny" { "Deny" }
                    }
                } @else {
                    p.hint { "This proposal is " (v.status) "; nothing more to decide." }
                }
            }
        },
    )
}

/// `2026-12-01T09:48:27.695Z` as `2026-12-01 09:48 UTC`.
fn when(rfc3339: &str) -> String {
    match (rfc3339.get(..10), rfc3339.get(11..16)) {
        (Some(day), Some(hm)) => format!("{day} {hm} UTC"),
        _ => rfc3339.to_owned(),
    }
}

fn slot_text(s: &SlotView) -> Markup {
    html! {
        @if let Some(d) = &s.slot.description { p { (d) } }
        @if let Some(o) = &s.slot.obtain {
            p { "Get it at " a href=(o) target="_blank" rel="noopener noreferrer" { (o) } }
        }
        @if let Some(i) = &s.slot.obtain_instructions { p.hint { (i) } }
    }
}

fn static_slot(s: &SlotView, p: &ProposalPage<'_>, pending: bool) -> Markup {
    let key = &s.slot.key;
    let field = format!("value:{key}");
    let id = format!("v-{key}");
    let agent_value = p.agent_values.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    html! {
        div.slot {
            h3 { code { (key) } }
            (slot_text(s))
            @if pending {
                @if let Some(val) = agent_value {
                    p.hint { "The agent supplied this value. Check it before you allow; you may replace it." }
                    div.reveal {
                        input type="password" id=(id) name=(field) value=(val) autocomplete="off" spellcheck="false";
                        button type="button" class="toggle" data-reveal=(id) { "Show" }
                    }
                } @else {
                    label for=(id) { "Value" }
                    input type="password" id=(id) name=(field) autocomplete="off" spellcheck="false" placeholder="paste the value";
                }
            } @else {
                p.hint { "Value not shown." }
            }
        }
    }
}

fn oauth_slot(s: &SlotView, p: &ProposalPage<'_>, pending: bool) -> Markup {
    let key = &s.slot.key;
    let o = s.slot.oauth.as_ref();
    let auth_url = o.and_then(|o| o.authorization_url.clone());
    let token_url = o.map(|o| o.token_url.clone()).unwrap_or_default();
    let scopes = o.map(|o| o.scopes.join(" ")).unwrap_or_default();
    let base = format!("/proposals/{}/oauth/{key}", p.view.id);
    html! {
        section.card.slot {
            h2 { "OAuth: " code { (key) } }
            (slot_text(s))
            @if s.staged {
                p.ok { "Connected: tokens are ready and will be stored when you allow." }
            }
            @if pending && auth_url.is_some() {
                form method="post" action={(base) "/connect"} id={"connect-" (key)} {
                    input type="hidden" name="csrf" value=(p.csrf);
                    (preset_fields(key))
                    label { "Authorization URL" input type="url" name="authorization_url" list="auth-urls" value=(auth_url.clone().unwrap_or_default()) required; }
                    label { "Token URL" input type="url" name="token_url" list="token-urls" value=(token_url) required; }
                    (client_fields(key))
                    label { "Scopes" input type="text" name="scopes" list={"scopes-" (key)} value=(scopes); }
                    datalist id={"scopes-" (key)} {}
                    button.primary type="submit" { "Connect" }
                }
            } @else if pending {
                form method="post" action={(base) "/paste"} id={"paste-" (key)} {
                    input type="hidden" name="csrf" value=(p.csrf);
                    p.hint { "Paste tokens you already have. A refresh token is checked by refreshing it before it is accepted." }
                    label { "Token URL" input type="url" name="token_url" value=(token_url) required; }
                    (client_fields(key))
                    label { "Refresh token" input type="password" name="refresh_token" autocomplete="off"; }
                    label { "Access token (optional)" input type="password" name="access_token" autocomplete="off"; }
                    label { "Access token lifetime in seconds (optional)" input type="number" name="expires_in" min="1"; }
                    button.primary type="submit" { "Validate and keep" }
                }
            }
        }
    }
}

fn client_fields(key: &str) -> Markup {
    html! {
        label { "Client ID" input type="text" name="client_id" id={"client-id-" (key)} autocomplete="off" required; }
        label { "Client secret" input type="password" name="client_secret" autocomplete="off"; }
        label { "Client authentication"
            select name="client_auth" {
                option value="basic" { "HTTP Basic (client_secret_basic)" }
                option value="form" { "Form fields (client_secret_post)" }
            }
        }
    }
}

fn preset_fields(key: &str) -> Markup {
    html! {
        label { "Provider (suggestions prefill the fields below)"
            input type="text" name="preset" class="preset" id={"preset-" (key)} list="presets" autocomplete="off" placeholder="GitHub, Google, Slack, Microsoft…";
        }
    }
}

/// The suggestion lists the Connect forms share (once per page).
fn preset_lists(presets: &[Preset]) -> Markup {
    html! {
        datalist id="presets" {
            @for pr in presets {
                option value=(pr.name) data-auth=(pr.authorization_url) data-token=(pr.token_url)
                    data-client-auth=(pr.client_auth) data-scopes=(pr.scopes.join(" ")) {}
            }
        }
        datalist id="auth-urls" { @for pr in presets { option value=(pr.authorization_url) { (pr.name) } } }
        datalist id="token-urls" { @for pr in presets { option value=(pr.token_url) { (pr.name) } } }
    }
}

/// What the Connect page of an existing oauth2 credential shows (never a token or a secret).
pub struct CredentialConnect<'a> {
    pub id: &'a str,
    pub token_url: &'a str,
    pub authorization_url: &'a str,
    pub scopes: &'a str,
    pub client_auth: &'a str,
    pub has_client: bool,
    pub has_refresh: bool,
    pub csrf: &'a str,
    pub presets: &'a [Preset],
    pub notice: Option<&'a str>,
    pub error: Option<&'a str>,
}

pub fn credential_connect(c: &CredentialConnect<'_>) -> Markup {
    let base = format!("/credentials/{}", c.id);
    let keep = if c.has_client { "leave empty to keep the stored one" } else { "required" };
    html! {
        (layout("Connect", html! {
            section.card.summary {
                h1 { "Connect " code { (c.id) } }
                p.meta { "Tokens are refreshed at " code { (c.token_url) } ". "
                    @if c.has_refresh { "A refresh token is stored; connecting replaces it." } @else { "No refresh token is stored yet." } }
                @if let Some(n) = c.notice { p.notice role="status" { (n) } }
                @if let Some(e) = c.error { p.error role="alert" { (e) } }
            }
            (preset_lists(c.presets))
            section.card.slot {
                h2 { "Authorize with the provider" }
                form method="post" action={(base) "/connect"} id={"connect-" (c.id)} {
                    input type="hidden" name="csrf" value=(c.csrf);
                    (preset_fields(c.id))
                    label { "Authorization URL" input type="url" name="authorization_url" list="auth-urls" value=(c.authorization_url) required; }
                    label { "Token URL (the credential's own)" input type="url" name="token_url" value=(c.token_url) readonly; }
                    label { "Client ID (" (keep) ")" input type="text" name="client_id" autocomplete="off"; }
                    label { "Client secret (" (keep) ")" input type="password" name="client_secret" autocomplete="off"; }
                    label { "Client authentication"
                        select name="client_auth" {
                            option value="basic" selected[c.client_auth == "basic"] { "HTTP Basic (client_secret_basic)" }
                            option value="form" selected[c.client_auth == "form"] { "Form fields (client_secret_post)" }
                        }
                    }
                    label { "Scopes" input type="text" name="scopes" list={"scopes-" (c.id)} value=(c.scopes); }
                    datalist id={"scopes-" (c.id)} {}
                    button.primary type="submit" { "Connect" }
                }
            }
            section.card.slot {
                h2 { "Or paste tokens" }
                form method="post" action={(base) "/paste"} id={"paste-" (c.id)} {
                    input type="hidden" name="csrf" value=(c.csrf);
                    p.hint { "A refresh token is checked by refreshing it before it is stored." }
                    label { "Client ID (" (keep) ")" input type="text" name="client_id" autocomplete="off"; }
                    label { "Client secret (" (keep) ")" input type="password" name="client_secret" autocomplete="off"; }
                    label { "Refresh token" input type="password" name="refresh_token" autocomplete="off"; }
                    label { "Access token (optional)" input type="password" name="access_token" autocomplete="off"; }
                    label { "Access token lifetime in seconds (optional)" input type="number" name="expires_in" min="1"; }
                    button.primary type="submit" { "Validate and store" }
                }
            }
        }))
    }
}
