//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values`.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use day2_model::{Labels, Matcher};
use serde_json::{Map, Value, json};

use crate::ServerState;
use crate::api::{
    ApiError, MAX_TIME_MS, MIN_TIME_MS, param, params, parse_selector, parse_time, success,
};

pub(crate) fn query_pairs(raw: Option<String>) -> Vec<(String, String)> {
    raw.map(|q| form_urlencoded(&q)).unwrap_or_default()
}

/// Decodes `a=1&b=2` (with `+` and percent escapes).
fn form_urlencoded(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Range {
    groups: Vec<Vec<Matcher>>,
    start: i64,
    end: i64,
    limit: Option<usize>,
}

fn range(pairs: &[(String, String)], require_match: bool) -> Result<Range, ApiError> {
    let start = parse_time("start", param(pairs, "start"), MIN_TIME_MS)?;
    let end = parse_time("end", param(pairs, "end"), MAX_TIME_MS)?;
    if end < start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start time",
        ));
    }
    let mut groups = Vec::new();
    for sel in params(pairs, "match[]") {
        groups.extend(parse_selector(sel)?);
    }
    if require_match && groups.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let limit = match param(pairs, "limit") {
        None | Some("") | Some("0") => None,
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_data(format!("invalid limit {l:?}")))?,
        ),
    };
    Ok(Range {
        groups,
        start,
        end,
        limit,
    })
}

fn labels_json(l: &Labels) -> Value {
    let mut m = Map::new();
    for label in l {
        m.insert(label.name.clone(), Value::String(label.value.clone()));
    }
    Value::Object(m)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("query task failed: {e}")))?
}

pub async fn series(State(st): State<Arc<ServerState>>, RawQuery(q): RawQuery) -> Response {
    series_impl(st, query_pairs(q))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub async fn series_form(
    State(st): State<Arc<ServerState>>,
    RawQuery(q): RawQuery,
    Form(body): Form<Vec<(String, String)>>,
) -> Response {
    let mut pairs = query_pairs(q);
    pairs.extend(body);
    series_impl(st, pairs)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn series_impl(
    st: Arc<ServerState>,
    pairs: Vec<(String, String)>,
) -> Result<Response, ApiError> {
    let r = range(&pairs, true)?;
    let q = st.queryable.clone();
    let set = blocking(move || {
        let mut set = BTreeSet::new();
        for g in &r.groups {
            let found = q
                .series(g, r.start, r.end)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            set.extend(found);
        }
        Ok((set, r.limit))
    })
    .await?;
    let (set, limit) = set;
    let data: Vec<Value> = set
        .iter()
        .take(limit.unwrap_or(usize::MAX))
        .map(labels_json)
        .collect();
    Ok(success(Value::Array(data)))
}

pub async fn labels(State(st): State<Arc<ServerState>>, RawQuery(q): RawQuery) -> Response {
    labels_impl(st, query_pairs(q))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub async fn labels_form(
    State(st): State<Arc<ServerState>>,
    RawQuery(q): RawQuery,
    Form(body): Form<Vec<(String, String)>>,
) -> Response {
    let mut pairs = query_pairs(q);
    pairs.extend(body);
    labels_impl(st, pairs)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn labels_impl(
    st: Arc<ServerState>,
    pairs: Vec<(String, String)>,
) -> Result<Response, ApiError> {
    let r = range(&pairs, false)?;
    let q = st.queryable.clone();
    let names = blocking(move || {
        let groups = if r.groups.is_empty() {
            vec![vec![]]
        } else {
            r.groups
        };
        let mut set = BTreeSet::new();
        for g in &groups {
            set.extend(
                q.label_names(g, r.start, r.end)
                    .map_err(|e| ApiError::internal(e.to_string()))?,
            );
        }
        Ok(set
            .into_iter()
            .take(r.limit.unwrap_or(usize::MAX))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(success(json!(names)))
}

pub async fn label_values(
    State(st): State<Arc<ServerState>>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(q);
    let r = range(&pairs, false)?;
    if !day2_model::labels::is_valid_label_name(&name) {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let q = st.queryable.clone();
    let values = blocking(move || {
        let groups = if r.groups.is_empty() {
            vec![vec![]]
        } else {
            r.groups
        };
        let mut set = BTreeSet::new();
        for g in &groups {
            set.extend(
                q.label_values(&name, g, r.start, r.end)
                    .map_err(|e| ApiError::internal(e.to_string()))?,
            );
        }
        Ok(set
            .into_iter()
            .take(r.limit.unwrap_or(usize::MAX))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(success(json!(values)))
}

/// `GET /api/v1/export?match[]=...&start=&end=`: raw samples as JSON lines in
/// VictoriaMetrics' export shape (`{"metric":{..},"values":[..],"timestamps":[..]}`),
/// for migrations and for checking exactly what was stored.
pub async fn export(
    State(st): State<Arc<ServerState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(q);
    let r = range(&pairs, true)?;
    let q = st.queryable.clone();
    let body = blocking(move || {
        let mut out = String::new();
        let mut seen = BTreeSet::new();
        for g in &r.groups {
            for s in q
                .select(g, r.start, r.end)
                .map_err(|e| ApiError::internal(e.to_string()))?
            {
                if !seen.insert(s.labels.clone()) {
                    continue;
                }
                let values: Vec<Value> = s
                    .samples
                    .iter()
                    .map(|p| crate::api::float_json(p.v))
                    .collect();
                let ts: Vec<i64> = s.samples.iter().map(|p| p.t).collect();
                out.push_str(
                    &json!({"metric": labels_json(&s.labels), "values": values, "timestamps": ts})
                        .to_string(),
                );
                out.push('\n');
            }
        }
        Ok(out)
    })
    .await?;
    Ok(([("content-type", "application/stream+json")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_strings() {
        let p = form_urlencoded("match%5B%5D=up%7Bjob%3D%22a%22%7D&start=1&x=a+b&bad=%zz");
        assert_eq!(p[0], ("match[]".into(), "up{job=\"a\"}".into()));
        assert_eq!(p[2].1, "a b");
        assert_eq!(p[3].1, "%zz");
    }
}
