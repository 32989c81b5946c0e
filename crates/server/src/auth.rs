//! Authentication of mutating endpoints (`/api/v1/write`, `/-/reload`).
//!
//! With API tokens configured, a mutation needs `Authorization: Bearer <token>`
//! matching one of them (compared in constant time). Without tokens, mutations
//! are accepted only from loopback clients, so a day2 listening on a network
//! address is never writable by anyone who can reach it. Secrets are never
//! logged; only the token's name is.
//!
//! An accepted mutation carries a [`Principal`] (a request extension): who
//! acts, for the audit log and for rules like "approved by someone other than
//! the requester". With tokens it is the token's name; from loopback without
//! tokens it is the `X-Day2-User` header (a local user is trusted to say who
//! they are) or `local`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ServerState;

/// A named API token (the secret is already resolved from `env:`/`file:`).
#[derive(Clone)]
pub struct ApiToken {
    pub name: String,
    pub secret: String,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiToken({:?}, <redacted>)", self.name)
    }
}

/// Who performs an authorised mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    /// How it was established: `token` or `loopback`.
    pub via: &'static str,
}

/// The header a loopback client names itself with when no tokens exist.
pub const USER_HEADER: &str = "x-day2-user";

/// A user name as the audit log may show it.
fn valid_user_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware for mutating routes.
pub async fn require_mutation_auth(
    State(st): State<Arc<ServerState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let tokens = st.tokens.read().clone();
    if tokens.is_empty() {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if peer.is_some_and(|ip| ip.is_loopback()) {
            let name = match req.headers().get(USER_HEADER) {
                None => "local".to_string(),
                Some(v) => match v.to_str().ok().filter(|s| valid_user_name(s)) {
                    Some(s) => s.to_string(),
                    None => {
                        return (
                            StatusCode::BAD_REQUEST,
                            "X-Day2-User: 1 to 64 characters of A-Z a-z 0-9 . _ @ -\n",
                        )
                            .into_response();
                    }
                },
            };
            req.extensions_mut().insert(Principal {
                name,
                via: "loopback",
            });
            return next.run(req).await;
        }
        return (
            StatusCode::FORBIDDEN,
            "mutations from non-loopback clients need an API token (server.auth.tokens)\n",
        )
            .into_response();
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(presented) = presented else {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing bearer token\n",
        )
            .into_response();
    };
    match tokens
        .iter()
        .find(|t| constant_time_eq(t.secret.as_bytes(), presented.as_bytes()))
    {
        Some(t) => {
            tracing::debug!(token = %t.name, path = %req.uri().path(), "authorised mutation");
            req.extensions_mut().insert(Principal {
                name: t.name.clone(),
                via: "token",
            });
            next.run(req).await
        }
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "invalid bearer token\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_and_redaction() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        let t = ApiToken {
            name: "ci".into(),
            secret: "s3cr3t".into(),
        };
        assert!(!format!("{t:?}").contains("s3cr3t"));
    }

    #[test]
    fn user_names_are_checked() {
        assert!(valid_user_name("alice@example.com"));
        assert!(valid_user_name("ci-bot_2"));
        assert!(!valid_user_name(""));
        assert!(!valid_user_name("alice bob"));
        assert!(!valid_user_name("x\ny"));
        assert!(!valid_user_name(&"a".repeat(65)));
    }
}
