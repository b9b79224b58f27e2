//! Console sign-in: the console token (`RELAY_CONSOLE_TOKEN`) is compared in constant time; a
//! signed session cookie (HMAC-SHA-256 under a key derived from the token) then says who is
//! signed in until when, and a CSRF token derived from the session guards every form.
//!
//! Sessions are not stored: any worker sharing the token accepts the cookie (several `relay
//! serve` behind one address), and changing the token signs everyone out.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

use super::super::secrets::{ExposeSecret as _, SecretString};

/// The session cookie's name.
pub(super) const COOKIE: &str = "relay_console";
/// How long a sign-in lasts.
pub(super) const SESSION_LIFETIME: TimeDelta = TimeDelta::hours(12);
/// The longest operator name kept (it goes into the audit log).
const NAME_MAX: usize = 40;

type HmacSha256 = Hmac<Sha256>;

/// The key sessions and CSRF tokens are signed with, derived from the console token so the
/// token itself never signs anything that leaves the process. `Debug` shows nothing.
#[derive(Clone)]
pub(super) struct SessionKey([u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey([redacted])")
    }
}

impl SessionKey {
    /// The key of `token`.
    pub(super) fn derive(token: &SecretString) -> Self {
        let mut mac = mac_with(token.expose_secret().as_bytes());
        mac.update(b"relay-console-session-v1");
        Self(mac.finalize().into_bytes().into())
    }

    fn mac(&self) -> HmacSha256 {
        mac_with(&self.0)
    }

    fn sign(&self, parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = self.mac();
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }

    fn verify(&self, parts: &[&[u8]], signature: &[u8]) -> bool {
        let mut mac = self.mac();
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        // `verify_slice` compares in constant time.
        mac.verify_slice(signature).is_ok()
    }

    /// A new session for `name`, issued at `now`.
    pub(super) fn issue(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Session, getrandom::Error> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce)?;
        Ok(Session {
            name: clean_name(name),
            nonce: hex(&nonce),
            issued: now.timestamp(),
        })
    }

    /// The cookie value of `session`.
    pub(super) fn cookie_value(&self, session: &Session) -> String {
        let issued = session.issued.to_string();
        let name = URL_SAFE_NO_PAD.encode(session.name.as_bytes());
        let signature = self.sign(&[
            issued.as_bytes(),
            session.nonce.as_bytes(),
            session.name.as_bytes(),
        ]);
        format!("v1.{issued}.{}.{name}.{}", session.nonce, hex(&signature))
    }

    /// The session a cookie value holds, if it is ours, untampered and not expired at `now`.
    pub(super) fn open(&self, value: &str, now: DateTime<Utc>) -> Option<Session> {
        let mut parts = value.split('.');
        let (Some("v1"), Some(issued), Some(nonce), Some(name), Some(signature), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let name = String::from_utf8(URL_SAFE_NO_PAD.decode(name).ok()?).ok()?;
        let signature = unhex(signature)?;
        if !self.verify(
            &[issued.as_bytes(), nonce.as_bytes(), name.as_bytes()],
            &signature,
        ) {
            return None;
        }
        let issued: i64 = issued.parse().ok()?;
        let age = now.timestamp() - issued;
        if age < -60 || age > SESSION_LIFETIME.num_seconds() {
            return None;
        }
        Some(Session {
            name,
            nonce: nonce.to_owned(),
            issued,
        })
    }

    /// The CSRF token of `session`: forms carry it, so another site cannot post for the
    /// operator even if a browser sent the cookie.
    pub(super) fn csrf(&self, session: &Session) -> String {
        hex(&self.sign(&[b"csrf", session.nonce.as_bytes()]))
    }

    /// Whether `candidate` is the CSRF token of `session` (constant time).
    pub(super) fn csrf_matches(&self, session: &Session, candidate: &str) -> bool {
        unhex(candidate)
            .is_some_and(|bytes| self.verify(&[b"csrf", session.nonce.as_bytes()], &bytes))
    }
}

fn mac_with(key: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length: this never fails.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

/// A signed-in operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Session {
    /// The name given at sign-in (for the audit log), `operator` when none.
    pub(super) name: String,
    /// Random, per sign-in: identifies the session in the audit log and keys its CSRF token.
    pub(super) nonce: String,
    /// Unix time of the sign-in.
    pub(super) issued: i64,
}

impl Session {
    /// Who the audit log says did an action: `console:<name>/<first 6 of the session>`.
    pub(super) fn actor(&self) -> String {
        format!(
            "console:{}/{}",
            self.name,
            &self.nonce[..self.nonce.len().min(6)]
        )
    }
}

/// The name kept for the audit log: letters, digits, `.-_@ ` only, at most [`NAME_MAX`].
fn clean_name(name: &str) -> String {
    let cleaned: String = name
        .trim()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | ' '))
        .take(NAME_MAX)
        .collect();
    let cleaned = cleaned.trim().to_owned();
    if cleaned.is_empty() {
        "operator".to_owned()
    } else {
        cleaned
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The `Set-Cookie` value that signs `value` in: only sent back to `/console`, never to
/// scripts (`HttpOnly`), never on a request another site starts (`SameSite=Strict`), and
/// `Secure` when the console is reached over HTTPS.
pub(super) fn set_cookie(value: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_LIFETIME.num_seconds(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that signs out.
pub(super) fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The session cookie's value in a `Cookie` header, if any.
pub(super) fn cookie_in(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SessionKey {
        SessionKey::derive(&SecretString::from("console-token-123"))
    }

    #[test]
    fn a_session_round_trips_and_a_tampered_or_old_one_is_refused() {
        let now = Utc::now();
        let key = key();
        let session = key.issue("Ann <script>", now).unwrap();
        assert_eq!(session.name, "Ann script");
        let value = key.cookie_value(&session);
        assert_eq!(key.open(&value, now), Some(session.clone()));
        // Another token's key, a changed name, an expired or a garbled cookie: refused.
        let other = SessionKey::derive(&SecretString::from("another"));
        assert_eq!(other.open(&value, now), None);
        let forged = value.replace(
            &URL_SAFE_NO_PAD.encode("Ann script"),
            &URL_SAFE_NO_PAD.encode("admin"),
        );
        assert_eq!(key.open(&forged, now), None);
        assert_eq!(
            key.open(&value, now + SESSION_LIFETIME + TimeDelta::seconds(1)),
            None
        );
        assert_eq!(key.open("v1.x.y", now), None);
        assert_eq!(key.open("", now), None);
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let now = Utc::now();
        let key = key();
        let a = key.issue("", now).unwrap();
        let b = key.issue("", now).unwrap();
        assert_eq!(a.name, "operator");
        let token = key.csrf(&a);
        assert!(key.csrf_matches(&a, &token));
        assert!(!key.csrf_matches(&b, &token));
        assert!(!key.csrf_matches(&a, ""));
        assert!(!key.csrf_matches(&a, "zz"));
    }

    #[test]
    fn cookies_are_http_only_strict_and_the_key_is_never_shown() {
        let cookie = set_cookie("v", false);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(set_cookie("v", true).ends_with("; Secure"));
        assert_eq!(cookie_in("a=1; relay_console=abc; b=2"), Some("abc"));
        assert_eq!(format!("{:?}", key()), "SessionKey([redacted])");
    }
}
