//! Signed acknowledgement links: a page carries a URL that acknowledges one
//! escalation as one user until the link expires, without an API token.
//!
//! The token is `<payload>.<mac>` in lowercase hex: the payload is
//! `v1:<escalation id>:<expires, Unix seconds>:<user id>` and the MAC its
//! HMAC-SHA256 under the configured key. Verification is constant-time (ring)
//! and checks the MAC before reading the payload; expiry is checked against
//! the time passed in. Pure: no clock, no I/O.

use jiff::Timestamp;
use ring::hmac;

/// The shortest key accepted (bytes).
pub const MIN_KEY_LEN: usize = 32;

/// What a link grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckClaims {
    pub escalation: i64,
    pub user: String,
    pub expires: Timestamp,
}

/// Why a token was refused. Messages are safe to show to whoever holds the link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckLinkError {
    #[error("this acknowledgement link is malformed")]
    Malformed,
    #[error("this acknowledgement link is not valid (wrong signature)")]
    BadSignature,
    #[error("this acknowledgement link expired at {0}")]
    Expired(Timestamp),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn key(secret: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret)
}

/// The token for `claims` under `secret`.
pub fn sign(secret: &[u8], claims: &AckClaims) -> String {
    let payload = format!(
        "v1:{}:{}:{}",
        claims.escalation,
        claims.expires.as_second(),
        claims.user
    );
    let tag = hmac::sign(&key(secret), payload.as_bytes());
    format!("{}.{}", hex(payload.as_bytes()), hex(tag.as_ref()))
}

/// Checks a token's signature, then its expiry at `now`.
pub fn verify(secret: &[u8], token: &str, now: Timestamp) -> Result<AckClaims, AckLinkError> {
    let (p, m) = token
        .split_once('.')
        .filter(|(p, m)| !p.is_empty() && !m.is_empty())
        .ok_or(AckLinkError::Malformed)?;
    let payload = unhex(p).ok_or(AckLinkError::Malformed)?;
    let mac = unhex(m).ok_or(AckLinkError::Malformed)?;
    hmac::verify(&key(secret), &payload, &mac).map_err(|_| AckLinkError::BadSignature)?;
    let text = String::from_utf8(payload).map_err(|_| AckLinkError::Malformed)?;
    let mut parts = text.splitn(4, ':');
    if parts.next() != Some("v1") {
        return Err(AckLinkError::Malformed);
    }
    let escalation = parts
        .next()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(AckLinkError::Malformed)?;
    let expires = parts
        .next()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| Timestamp::from_second(s).ok())
        .ok_or(AckLinkError::Malformed)?;
    let user = parts
        .next()
        .filter(|u| !u.is_empty())
        .ok_or(AckLinkError::Malformed)?;
    if now >= expires {
        return Err(AckLinkError::Expired(expires));
    }
    Ok(AckClaims {
        escalation,
        user: user.to_string(),
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn claims() -> AckClaims {
        AckClaims {
            escalation: 42,
            user: "alice:ops".into(),
            expires: ts("2026-01-02T00:00:00Z"),
        }
    }

    #[test]
    fn round_trips_until_expiry() {
        let t = sign(KEY, &claims());
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit() || b == b'.'));
        assert_eq!(verify(KEY, &t, ts("2026-01-01T23:59:59Z")), Ok(claims()));
        assert_eq!(
            verify(KEY, &t, ts("2026-01-02T00:00:00Z")),
            Err(AckLinkError::Expired(ts("2026-01-02T00:00:00Z")))
        );
    }

    #[test]
    fn tampering_and_other_keys_are_refused() {
        let now = ts("2026-01-01T00:00:00Z");
        let t = sign(KEY, &claims());
        assert_eq!(
            verify(b"another key another key another k", &t, now),
            Err(AckLinkError::BadSignature)
        );
        // a different escalation id with the original MAC
        let (_, mac) = t.split_once('.').unwrap();
        let forged = format!("{}.{mac}", hex(b"v1:43:1767312000:alice:ops"));
        assert_eq!(verify(KEY, &forged, now), Err(AckLinkError::BadSignature));
        // a later expiry with the original MAC
        let forged = format!("{}.{mac}", hex(b"v1:42:1867312000:alice:ops"));
        assert_eq!(verify(KEY, &forged, now), Err(AckLinkError::BadSignature));
        for bad in ["", "abc", "zz.zz", "00.", ".00", "0.0"] {
            assert_eq!(verify(KEY, bad, now), Err(AckLinkError::Malformed), "{bad}");
        }
    }
}
