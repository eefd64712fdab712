//! Console sessions: a spent link becomes a session bound to one subject (a proposal id, or
//! `credential:<id>` for the Connect page), held in this
//! process's memory only (a restart asks for a new link). Each session has its CSRF token; an
//! OAuth Connect in progress is found by its `state` (the provider's redirect back is cross-site,
//! so the `SameSite=Strict` cookie does not come with it).
//!
//! Bounded: at most `MAX_SESSIONS` sessions and `MAX_FLOWS` flows, the oldest dropped first;
//! both expire.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::crypto;
use crate::secret::SecretString;

const MAX_SESSIONS: usize = 256;
const MAX_FLOWS: usize = 64;
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 60);
const FLOW_TTL: Duration = Duration::from_secs(10 * 60);

/// A person's session on one subject's page.
#[derive(Clone)]
pub struct Session {
    /// A proposal id, or `credential:<id>`.
    pub subject: String,
    pub csrf: SecretString,
    pub viewed: bool,
    created: Instant,
}

/// An Authorization Code + PKCE flow started from a proposal's OAuth slot or a credential's page.
pub struct Flow {
    /// The session's subject.
    pub subject: String,
    pub key: String,
    pub client_id: SecretString,
    pub client_secret: Option<SecretString>,
    pub authorization_url: String,
    pub token_url: String,
    pub scopes: Vec<String>,
    pub client_auth: String,
    pub verifier: SecretString,
    pub redirect_uri: String,
    created: Instant,
}

impl Flow {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        subject: String,
        key: String,
        client_id: SecretString,
        client_secret: Option<SecretString>,
        authorization_url: String,
        token_url: String,
        scopes: Vec<String>,
        client_auth: String,
        verifier: SecretString,
        redirect_uri: String,
    ) -> Flow {
        Flow {
            subject,
            key,
            client_id,
            client_secret,
            authorization_url,
            token_url,
            scopes,
            client_auth,
            verifier,
            redirect_uri,
            created: Instant::now(),
        }
    }
}

/// Sessions by id and flows by state.
#[derive(Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
    flows: Mutex<HashMap<String, Flow>>,
}

impl Sessions {
    /// Opens a session for `subject`; returns its id (the cookie value).
    pub fn open(&self, subject: &str) -> Result<String, crypto::CryptoError> {
        let id = crypto::random_token("")?;
        let csrf = SecretString::new(crypto::random_token("")?);
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.created.elapsed() < SESSION_TTL);
        while map.len() >= MAX_SESSIONS {
            let oldest = map.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(id.clone(), Session { subject: subject.to_owned(), csrf, viewed: false, created: Instant::now() });
        Ok(id)
    }

    /// The live session `id`, if it is bound to `subject`.
    pub fn get(&self, id: &str, subject: &str) -> Option<Session> {
        let map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).filter(|s| s.subject == subject && s.created.elapsed() < SESSION_TTL).cloned()
    }

    /// Marks the session's first view; returns whether this was it.
    pub fn first_view(&self, id: &str) -> bool {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(id) {
            Some(s) if !s.viewed => {
                s.viewed = true;
                true
            }
            _ => false,
        }
    }

    /// Ends a session (after a decision).
    pub fn close(&self, id: &str) {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// Checks a form's CSRF token against the session's, in constant time.
    pub fn csrf_ok(session: &Session, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| crypto::constant_time_eq(p.as_bytes(), session.csrf.expose().as_bytes()))
    }

    /// Remembers a flow; returns its `state`.
    pub fn start_flow(&self, flow: Flow) -> Result<String, crypto::CryptoError> {
        let state = crypto::random_token("")?;
        let mut map = self.flows.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, f| f.created.elapsed() < FLOW_TTL);
        while map.len() >= MAX_FLOWS {
            let oldest = map.iter().min_by_key(|(_, f)| f.created).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(state.clone(), flow);
        Ok(state)
    }

    /// Takes the flow a redirect's `state` names (once).
    pub fn take_flow(&self, state: &str) -> Option<Flow> {
        let mut map = self.flows.lock().unwrap_or_else(|p| p.into_inner());
        let key = map.keys().find(|k| crypto::constant_time_eq(k.as_bytes(), state.as_bytes())).cloned()?;
        map.remove(&key).filter(|f| f.created.elapsed() < FLOW_TTL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_opens_only_its_own_proposal_and_checks_csrf() {
        let s = Sessions::default();
        let id = s.open("prp_a").unwrap();
        let session = s.get(&id, "prp_a").unwrap();
        assert!(s.get(&id, "prp_b").is_none(), "bound to one proposal");
        assert!(s.get("forged", "prp_a").is_none());
        assert!(Sessions::csrf_ok(&session, Some(session.csrf.expose())));
        assert!(!Sessions::csrf_ok(&session, Some("forged")));
        assert!(!Sessions::csrf_ok(&session, None));
        assert!(s.first_view(&id) && !s.first_view(&id));
        s.close(&id);
        assert!(s.get(&id, "prp_a").is_none());
    }

    #[test]
    fn sessions_are_bounded() {
        let s = Sessions::default();
        let first = s.open("p").unwrap();
        for _ in 0..MAX_SESSIONS {
            s.open("p").unwrap();
        }
        assert!(s.get(&first, "p").is_none(), "the oldest was dropped");
        assert_eq!(s.sessions.lock().unwrap().len(), MAX_SESSIONS);
    }
}
