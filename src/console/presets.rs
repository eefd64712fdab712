//! OAuth provider presets for the Connect form: popular providers plus every oauth2 provider of
//! the registry. Picking one prefills the authorization URL, token URL, client-auth method and
//! scope suggestions; any other provider works by pasting its URLs.

use crate::auth::{AuthConfig, ClientAuth};
use crate::registry::Registry;

/// One provider the Connect form suggests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preset {
    pub name: String,
    pub authorization_url: String,
    pub token_url: String,
    /// `basic` or `form`.
    pub client_auth: &'static str,
    pub scopes: Vec<String>,
}

/// name, authorization URL, token URL, client auth, scope suggestions.
#[rustfmt::skip]
const POPULAR: &[(&str, &str, &str, &str, &[&str])] = &[
    ("GitHub", "https://github.com/login/oauth/authorize", "https://github.com/login/oauth/access_token", "form",
     &["repo", "read:user", "user:email", "workflow", "read:org", "gist"]),
    ("Google", "https://accounts.google.com/o/oauth2/v2/auth", "https://oauth2.googleapis.com/token", "form",
     &["openid", "email", "profile", "https://www.googleapis.com/auth/calendar", "https://www.googleapis.com/auth/gmail.readonly", "https://www.googleapis.com/auth/drive.readonly"]),
    ("Slack", "https://slack.com/oauth/v2/authorize", "https://slack.com/api/oauth.v2.access", "form",
     &["chat:write", "channels:read", "channels:history", "users:read", "files:write"]),
    ("Microsoft", "https://login.microsoftonline.com/common/oauth2/v2.0/authorize", "https://login.microsoftonline.com/common/oauth2/v2.0/token", "form",
     &["offline_access", "User.Read", "Mail.Read", "Calendars.ReadWrite", "Files.Read"]),
    ("Spotify", "https://accounts.spotify.com/authorize", "https://accounts.spotify.com/api/token", "basic",
     &["user-read-email", "user-read-private", "playlist-read-private", "user-modify-playback-state"]),
    ("GitLab", "https://gitlab.com/oauth/authorize", "https://gitlab.com/oauth/token", "form",
     &["api", "read_user", "read_repository", "write_repository"]),
    ("Atlassian", "https://auth.atlassian.com/authorize", "https://auth.atlassian.com/oauth/token", "form",
     &["read:jira-work", "write:jira-work", "read:confluence-content.all", "offline_access"]),
    ("Notion", "https://api.notion.com/v1/oauth/authorize", "https://api.notion.com/v1/oauth/token", "basic", &[]),
    ("Dropbox", "https://www.dropbox.com/oauth2/authorize", "https://api.dropboxapi.com/oauth2/token", "form",
     &["files.content.read", "files.content.write", "account_info.read"]),
    ("Salesforce", "https://login.salesforce.com/services/oauth2/authorize", "https://login.salesforce.com/services/oauth2/token", "form",
     &["api", "refresh_token", "offline_access"]),
];

/// Every preset: the popular list, then the registry's oauth2 providers (one of the same name
/// lends its scopes to the popular entry).
pub fn all(registry: &Registry) -> Vec<Preset> {
    let mut out: Vec<Preset> = POPULAR
        .iter()
        .map(|(name, auth, token, client_auth, scopes)| Preset {
            name: (*name).to_owned(),
            authorization_url: (*auth).to_owned(),
            token_url: (*token).to_owned(),
            client_auth,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        })
        .collect();
    let mut from_registry: Vec<Preset> = registry
        .providers()
        .filter_map(|p| match &p.def.auth {
            AuthConfig::Oauth2 { token_endpoint, authorization_endpoint: Some(auth), scopes, client_auth, .. } => {
                Some(Preset {
                    name: p.id().to_owned(),
                    authorization_url: auth.clone(),
                    token_url: token_endpoint.clone(),
                    client_auth: match client_auth {
                        ClientAuth::Basic => "basic",
                        ClientAuth::Form => "form",
                    },
                    scopes: scopes.clone(),
                })
            }
            _ => None,
        })
        .collect();
    from_registry.sort_by(|a, b| a.name.cmp(&b.name));
    for p in from_registry {
        match out.iter_mut().find(|o| o.name.eq_ignore_ascii_case(&p.name)) {
            Some(same) => {
                for s in p.scopes {
                    if !same.scopes.contains(&s) {
                        same.scopes.push(s);
                    }
                }
            }
            None => out.push(p),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn popular_providers_and_the_registry_are_offered_with_https_endpoints() {
        let presets = all(Registry::builtin().unwrap());
        for name in ["GitHub", "Google", "Slack", "Microsoft", "Spotify"] {
            assert!(presets.iter().any(|p| p.name == name), "{name}");
        }
        assert!(presets.iter().any(|p| p.name == "google-calendar"), "registry providers are offered by id");
        for p in &presets {
            assert!(p.authorization_url.starts_with("https://") && p.token_url.starts_with("https://"), "{p:?}");
        }
        let mut names: Vec<&str> = presets.iter().map(|p| p.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), presets.len(), "names are unique");
    }
}
