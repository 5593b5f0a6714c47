//! The replication API, beside the TMF base path: what the replication workers of this
//! marketplace did, for operators and monitoring.
//!
//! | method | path | answer |
//! | --- | --- | --- |
//! | GET | `/replication/v1/audit?limit=&cursor=` | the audit trail, oldest first; `X-Next-Cursor` when there is more |
//! | GET | `/replication/v1/deadLetter?limit=&cursor=` | dead letters by tx hash; `X-Next-Cursor` when there is more |
//! | GET | `/replication/v1/status` | member id, checkpoints, last outbox seq, dead-letter count |
//!
//! `status` is public (counters only). The audit trail and the dead letters need a bearer
//! token, as writes do: they name every replicated entity, those restricted to an audience
//! included, and say who sent what.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use dome_catalog_store::{records, CatalogStore, StoreError};
use dome_tmf::ErrorCode;
use serde::Serialize;
use serde_json::json;

use crate::app::{header_value, json_response, require_token, store_failure, AppState, Failure};

const LOGS_NEED_A_TOKEN: &str = "the audit trail and the dead letters name restricted entities: \
     send Authorization: Bearer <token>";

/// Base path of the replication API.
pub const REPLICATION_BASE: &str = "/replication/v1";
/// Page size when `limit` is not given.
pub const DEFAULT_PAGE: usize = 100;

type Answer = Result<Response, Failure>;

/// The replication routes, to merge into the API router.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(&format!("{REPLICATION_BASE}/audit"), get(audit))
        .route(&format!("{REPLICATION_BASE}/deadLetter"), get(dead_letters))
        .route(&format!("{REPLICATION_BASE}/status"), get(status))
}

/// `limit` and `cursor` of a log read.
#[derive(Debug, PartialEq, Eq)]
struct PageRequest {
    limit: usize,
    cursor: Option<String>,
}

fn bad_query(message: impl Into<String>) -> Failure {
    Failure::new(ErrorCode::InvalidQuery, message)
}

fn page_request(raw: Option<&str>, max_limit: usize) -> Result<PageRequest, Failure> {
    let mut limit = None;
    let mut cursor = None;
    for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "limit" if limit.is_none() => {
                let text = value.trim();
                let n = Some(text)
                    .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|t| t.parse::<usize>().ok())
                    .filter(|n| (1..=max_limit).contains(n))
                    .ok_or_else(|| {
                        bad_query(format!(
                            "limit {text:?}: expected an integer from 1 to {max_limit}"
                        ))
                    })?;
                limit = Some(n);
            }
            "cursor" if cursor.is_none() => {
                if value.is_empty() {
                    return Err(bad_query(
                        "cursor is empty: pass the X-Next-Cursor of the previous page, or omit it",
                    ));
                }
                cursor = Some(value.into_owned());
            }
            "limit" | "cursor" => return Err(bad_query(format!("{name} is given twice"))),
            other => {
                return Err(bad_query(format!(
                    "unknown query parameter {other:?}: expected limit and cursor"
                )))
            }
        }
    }
    Ok(PageRequest {
        limit: limit.unwrap_or(DEFAULT_PAGE.min(max_limit)),
        cursor,
    })
}

/// A store `BadRequest` on a log read can only be about the cursor we passed on.
fn page_failure(e: StoreError) -> Failure {
    match e {
        StoreError::BadRequest(message) => bad_query(format!("cursor: {message}")),
        other => store_failure(other),
    }
}

fn page_response<T: Serialize>(items: &[T], next: Option<String>) -> Answer {
    let value = serde_json::to_value(items)
        .map_err(|_| Failure::new(ErrorCode::Internal, "a log record could not be encoded"))?;
    let mut response = json_response(StatusCode::OK, &value);
    if let Some(next) = next {
        response
            .headers_mut()
            .insert("x-next-cursor", header_value(&next)?);
    }
    Ok(response)
}

async fn audit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Answer {
    require_token(&state, &headers, LOGS_NEED_A_TOKEN).await?;
    let request = page_request(raw.as_deref(), state.limits.max_limit)?;
    let page = state
        .store
        .audit(request.cursor, request.limit)
        .await
        .map_err(page_failure)?;
    page_response(&page.items, page.next)
}

async fn dead_letters(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Answer {
    require_token(&state, &headers, LOGS_NEED_A_TOKEN).await?;
    let request = page_request(raw.as_deref(), state.limits.max_limit)?;
    let page = state
        .store
        .dead_letters(request.cursor, request.limit)
        .await
        .map_err(page_failure)?;
    page_response(&page.items, page.next)
}

/// A checkpoint record's value (decimal), 0 when it was never written.
async fn checkpoint(store: &dyn CatalogStore, name: &str) -> Result<u64, Failure> {
    let Some(record) = store.get_record(name).await.map_err(store_failure)? else {
        return Ok(0);
    };
    record.value.trim().parse::<u64>().map_err(|_| {
        tracing::error!(record = name, value = %record.value, "checkpoint is not a number");
        Failure::new(
            ErrorCode::Internal,
            format!("the record {name} is not a number"),
        )
    })
}

/// The highest outbox seq, starting from `known` (a seq that exists, or 0). Outbox seqs have
/// no gaps, so "is there an entry after n" is monotone in n: a galloping then binary search
/// finds the last one in O(log(last - known)) reads of at most one entry each. `known` is the
/// publisher checkpoint, so in steady state this is one read.
pub async fn last_outbox_seq(store: &dyn CatalogStore, known: u64) -> Result<u64, StoreError> {
    // Entry n exists iff there is an entry after n - 1 (seqs start at 1, without gaps).
    let exists = |n: u64| async move {
        Ok::<_, StoreError>(!store.outbox_after(n - 1, 1).await?.is_empty())
    };
    // A checkpoint ahead of the outbox would be a bug elsewhere; search from the start then.
    let mut low = if known > 0 && exists(known).await? {
        known
    } else {
        0
    };
    // Invariant: entry `low` exists (or low = 0). Gallop to some `high` without an entry.
    let mut step = 1u64;
    let mut high = loop {
        let probe = low.saturating_add(step);
        if probe == low {
            return Ok(low);
        }
        if exists(probe).await? {
            low = probe;
            step = step.saturating_mul(2);
        } else {
            break probe;
        }
    };
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if exists(middle).await? {
            low = middle;
        } else {
            high = middle;
        }
    }
    Ok(low)
}

async fn status(State(state): State<Arc<AppState>>) -> Answer {
    let store = state.store.as_ref();
    let publisher = checkpoint(store, records::PUBLISHER_CHECKPOINT).await?;
    let relay = checkpoint(store, records::RELAY_CHECKPOINT).await?;
    let outbox_last = last_outbox_seq(store, publisher)
        .await
        .map_err(store_failure)?;
    let dead = store.dead_letter_count().await.map_err(store_failure)?;
    let body = json!({
        "member": state.member_id.as_ref().map(|m| m.as_str()),
        "publisherCheckpoint": publisher,
        "outboxLast": outbox_last,
        "relayCheckpoint": relay,
        "deadLetters": dead,
    });
    Ok(json_response(StatusCode::OK, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_requests() {
        assert_eq!(
            page_request(None, 1000).ok(),
            Some(PageRequest {
                limit: DEFAULT_PAGE,
                cursor: None
            })
        );
        assert_eq!(
            page_request(Some("limit=5&cursor=abc%3D"), 1000).ok(),
            Some(PageRequest {
                limit: 5,
                cursor: Some("abc=".into())
            })
        );
        assert_eq!(page_request(None, 10).ok().map(|p| p.limit), Some(10));
        for bad in [
            "limit=0",
            "limit=1001",
            "limit=-1",
            "limit=x",
            "limit=",
            "limit=1&limit=2",
            "cursor=",
            "cursor=a&cursor=b",
            "offset=3",
        ] {
            let failure = page_request(Some(bad), 1000).expect_err(bad);
            assert_eq!(failure.0.http_status(), 400, "{bad}");
        }
    }
}
