//! A loopback receiver of on-call pages (`/page/{user}`) and of a team's
//! webhook (`/chat`), recording every body in arrival order.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;

use super::wait_for;

#[derive(Clone, Default)]
pub struct Hook {
    pub got: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Hook {
    /// Starts the receiver; returns it and its base URL.
    pub async fn start() -> (Hook, String) {
        let hook = Hook::default();
        let (h1, h2) = (hook.clone(), hook.clone());
        let app = axum::Router::new()
            .route(
                "/page/{user}",
                axum::routing::post(
                    move |axum::extract::Path(user): axum::extract::Path<String>,
                          body: axum::body::Bytes| {
                        let h = h1.clone();
                        async move {
                            h.got
                                .lock()
                                .push((user, serde_json::from_slice(&body).unwrap()));
                            "ok"
                        }
                    },
                ),
            )
            .route(
                "/chat",
                axum::routing::post(move |body: axum::body::Bytes| {
                    let h = h2.clone();
                    async move {
                        h.got
                            .lock()
                            .push(("chat".into(), serde_json::from_slice(&body).unwrap()));
                        "ok"
                    }
                }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        (hook, url)
    }

    /// Pages received by `user` (`chat`: the webhook), in arrival order.
    pub fn pages(&self, user: &str) -> Vec<Value> {
        self.got
            .lock()
            .iter()
            .filter(|(u, _)| u == user)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Waits for the `n`th page to `user`.
    pub async fn wait_page(&self, user: &str, n: usize) -> Value {
        wait_for(
            &format!("page #{n} to {user}"),
            Duration::from_secs(30),
            || {
                let p = self.pages(user);
                async move { p.get(n - 1).cloned() }
            },
        )
        .await
    }

    /// Waits for the first page to `user` whose title satisfies `pred`.
    pub async fn wait_page_where(
        &self,
        user: &str,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> Value {
        wait_for(what, Duration::from_secs(60), || {
            let found = self
                .pages(user)
                .into_iter()
                .find(|b| pred(b["title"].as_str().unwrap_or("")));
            async move { found }
        })
        .await
    }
}

/// POSTs JSON as `user` (`X-Day2-User`, accepted on loopback); returns the
/// status and the JSON answer (`null` when it is not JSON).
pub async fn post_as(d: &super::Day2, path: &str, user: &str, body: Value) -> (u16, Value) {
    let r = super::client()
        .post(d.url(path))
        .header("X-Day2-User", user)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}
