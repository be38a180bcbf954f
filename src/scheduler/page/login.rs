//! How a browser gets in: `drover dashboard` (holding the cluster's token)
//! asks for a one-time code; the browser trades it for a session, kept in
//! an `HttpOnly` cookie. Codes and sessions are few and short-lived, and
//! compared in constant time; a code is good once.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use crate::protocol::Token;

/// How long a code stays good.
pub(crate) const CODE_LIFETIME: Duration = Duration::from_secs(300);
/// How long a session lasts.
pub(crate) const SESSION_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Codes outstanding at once; a new one drops the oldest.
const MAX_CODES: usize = 16;
/// Sessions at once; a new one ends the oldest.
const MAX_SESSIONS: usize = 64;

/// A secret with the time it stops being good, and (a session's) the
/// token its page's actions must carry: a cross-site request gets the
/// cookie sent (were `SameSite` ignored) but cannot read the page for it.
struct Secret {
    value: Token,
    until: Instant,
    actions: Token,
}

/// The codes handed out and the sessions they became.
#[derive(Default)]
pub(crate) struct Logins {
    codes: VecDeque<Secret>,
    sessions: VecDeque<Secret>,
}

impl Logins {
    /// A fresh one-time code, good for `CODE_LIFETIME` from `now`.
    pub fn new_code(&mut self, now: Instant) -> Token {
        push(&mut self.codes, MAX_CODES, now + CODE_LIFETIME)
    }

    /// Trades a code for a session id, once; `None` for a code that is
    /// unknown, used or expired.
    pub fn redeem(&mut self, code: &str, now: Instant) -> Option<Token> {
        let at = find(&mut self.codes, code, now)?;
        self.codes.remove(at);
        Some(push(
            &mut self.sessions,
            MAX_SESSIONS,
            now + SESSION_LIFETIME,
        ))
    }

    /// Whether `session` is a live session.
    pub fn is_session(&mut self, session: &str, now: Instant) -> bool {
        find(&mut self.sessions, session, now).is_some()
    }

    /// The action token of live session `session`.
    pub fn actions_token(&mut self, session: &str, now: Instant) -> Option<Token> {
        let at = find(&mut self.sessions, session, now)?;
        Some(self.sessions[at].actions.clone())
    }
}

fn push(list: &mut VecDeque<Secret>, max: usize, until: Instant) -> Token {
    while list.len() >= max {
        list.pop_front();
    }
    let value = Token::generate();
    list.push_back(Secret {
        value: value.clone(),
        until,
        actions: Token::generate(),
    });
    value
}

/// Drops what expired, then looks `presented` up, comparing it with every
/// secret in constant time.
fn find(list: &mut VecDeque<Secret>, presented: &str, now: Instant) -> Option<usize> {
    list.retain(|s| s.until > now);
    let mut found = None;
    for (i, s) in list.iter().enumerate() {
        if bool::from(s.value.expose().as_bytes().ct_eq(presented.as_bytes())) {
            found = Some(i);
        }
    }
    found
}

/// The session id in a `Cookie` header, if it carries the cookie `name`.
pub(crate) fn session_cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

/// The session id in cluster `cluster`'s cookie, if `headers` carry one.
pub(crate) fn session_id(
    cluster: &crate::protocol::ClusterId,
    headers: &axum::http::HeaderMap,
) -> Option<String> {
    let name = cookie_name(cluster);
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| session_cookie(h, &name))
        .map(String::from)
}

/// The cookie's name for the page of cluster `cluster`: a browser keeps
/// cookies by host, not by port, so two pools' pages on one host (a login
/// node) each need their own name, or each login would end the other's.
pub(crate) fn cookie_name(cluster: &crate::protocol::ClusterId) -> String {
    format!("drover_session_{cluster}")
}

/// The `Set-Cookie` value for a new session: only for the page's paths,
/// out of scripts' reach, never sent from another site's page, and only
/// over TLS when the scheduler has it.
pub(crate) fn set_cookie(name: &str, session: &Token, tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    format!(
        "{name}={}; Path=/ui; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        session.expose(),
        SESSION_LIFETIME.as_secs()
    )
}

/// Whether `path` is one of the page's own paths, safe to send a browser
/// on to after its login (never another site: no `//`, no `\\`, no
/// scheme).
pub(crate) fn is_page_path(path: &str) -> bool {
    (path == "/ui" || path.starts_with("/ui/"))
        && path.len() <= 300
        && !path.contains("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_good_once_and_becomes_a_session() {
        let mut l = Logins::default();
        let now = Instant::now();
        let code = l.new_code(now);
        assert!(l.redeem("nope", now).is_none());
        let session = l.redeem(code.expose(), now).expect("the code is good");
        assert!(l.redeem(code.expose(), now).is_none(), "used twice");
        assert!(l.is_session(session.expose(), now));
        assert!(!l.is_session(code.expose(), now));
        assert!(!l.is_session("", now));
        assert!(!l.is_session(session.expose(), now + SESSION_LIFETIME));
    }

    #[test]
    fn codes_expire_and_are_bounded() {
        let mut l = Logins::default();
        let now = Instant::now();
        let late = l.new_code(now);
        assert!(l.redeem(late.expose(), now + CODE_LIFETIME).is_none());
        let first = l.new_code(now);
        for _ in 0..MAX_CODES {
            l.new_code(now);
        }
        assert_eq!(l.codes.len(), MAX_CODES);
        assert!(
            l.redeem(first.expose(), now).is_none(),
            "the oldest dropped"
        );
    }

    #[test]
    fn sessions_are_bounded_the_oldest_ends() {
        let mut l = Logins::default();
        let now = Instant::now();
        let mut sessions = Vec::new();
        for _ in 0..=MAX_SESSIONS {
            let code = l.new_code(now);
            sessions.push(l.redeem(code.expose(), now).unwrap());
        }
        assert!(!l.is_session(sessions[0].expose(), now));
        assert!(l.is_session(sessions[MAX_SESSIONS].expose(), now));
    }

    #[test]
    fn a_login_sends_the_browser_on_only_to_the_pages_own_paths() {
        assert!(is_page_path("/ui") && is_page_path("/ui/workers/w3"));
        for bad in [
            "/uix",
            "//evil.example/ui",
            "/ui//evil",
            "https://x/ui",
            "/ui/\\x",
            "/ui/%2f",
        ] {
            assert!(!is_page_path(bad), "{bad}");
        }
    }

    #[test]
    fn the_cookie_is_found_among_others_and_set_strictly() {
        let id: crate::protocol::ClusterId = "ab12cd34".parse().unwrap();
        let name = cookie_name(&id);
        let other = cookie_name(&"ffff0000".parse().unwrap());
        let header = format!("a=1; {other}=theirs; {name}=xyz; b=2");
        assert_eq!(session_cookie(&header, &name), Some("xyz"));
        assert_eq!(session_cookie(&format!("{name}x=1"), &name), None);
        let t = Token::generate();
        let c = set_cookie(&name, &t, true);
        assert!(c.starts_with(&format!("{name}=")));
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"));
        assert!(!set_cookie(&name, &t, false).contains("Secure"));
    }
}
