//! `abci_query` paths. Answers are JSON; errors carry a [`QueryCode`] and a log that says why.
//!
//! | path | answer |
//! | --- | --- |
//! | `/members` | every member with its key, base URL and whether it is active |
//! | `/member/{id}` | one member |
//! | `/entity/{type}/{id}` | the entity's head (origin, version, content hash, deleted) |
//! | `/origin/{id}/seq` | `{"origin": id, "last_seq": n}` (0 before its first event) |
//! | `/events/{from}/{to}` | accepted catalogue events of heights from..=to (at most 1000) |
//! | `/governance` | governance nonce and validator powers |
//! | `/status` | committed height and app hash |

use dome_events::{MemberId, QueryCode, CODESPACE};
use serde::Serialize;
use serde_json::json;
use tendermint_proto::v0_38::abci::{RequestQuery, ResponseQuery};

use crate::state::BusState;
use crate::store::Store;

/// Widest height range one `/events` query may ask for.
pub const MAX_EVENT_RANGE: u64 = 1000;

struct QueryError {
    code: QueryCode,
    log: String,
}

fn fail(code: QueryCode, log: impl Into<String>) -> QueryError {
    QueryError {
        code,
        log: log.into(),
    }
}

pub fn answer(
    state: &BusState,
    store: &Store,
    height: u64,
    request: &RequestQuery,
) -> ResponseQuery {
    match route(state, store, &request.path) {
        Ok(value) => ResponseQuery {
            code: 0,
            value: serde_json::to_vec(&value).unwrap_or_default().into(),
            height: height as i64,
            ..Default::default()
        },
        Err(e) => ResponseQuery {
            code: e.code as u32,
            log: e.log,
            codespace: CODESPACE.to_owned(),
            height: height as i64,
            ..Default::default()
        },
    }
}

fn member_json(record: &crate::state::MemberRecord) -> serde_json::Value {
    json!({
        "id": record.info.id,
        "public_key": record.info.public_key,
        "base_url": record.info.base_url,
        "active": record.active,
    })
}

fn to_value<T: Serialize>(value: &T) -> Result<serde_json::Value, QueryError> {
    serde_json::to_value(value).map_err(|e| fail(QueryCode::BadArgument, e.to_string()))
}

fn parse_height(text: &str) -> Result<u64, QueryError> {
    text.parse::<u64>().map_err(|_| {
        fail(
            QueryCode::BadArgument,
            format!("{text:?} is not a block height"),
        )
    })
}

fn route(state: &BusState, store: &Store, path: &str) -> Result<serde_json::Value, QueryError> {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        ["", "members"] => Ok(serde_json::Value::Array(
            state.members.values().map(member_json).collect(),
        )),
        ["", "member", id] => state
            .members
            .get(&MemberId(id.to_string()))
            .map(member_json)
            .ok_or_else(|| fail(QueryCode::NotFound, format!("no member {id:?}"))),
        ["", "entity", entity_type, id] => {
            let key = format!("{entity_type}/{id}");
            let head = state
                .heads
                .get(&key)
                .ok_or_else(|| fail(QueryCode::NotFound, format!("no entity {key}")))?;
            to_value(head)
        }
        ["", "origin", id, "seq"] => {
            let origin = MemberId(id.to_string());
            if !state.members.contains_key(&origin) {
                return Err(fail(QueryCode::NotFound, format!("no member {id:?}")));
            }
            let last_seq = state.origin_seqs.get(&origin).copied().unwrap_or(0);
            Ok(json!({ "origin": origin, "last_seq": last_seq }))
        }
        ["", "events", from, to] => {
            let (from, to) = (parse_height(from)?, parse_height(to)?);
            if from > to {
                return Err(fail(
                    QueryCode::BadArgument,
                    format!("range {from}..={to} is empty: from must not exceed to"),
                ));
            }
            if to - from >= MAX_EVENT_RANGE {
                return Err(fail(
                    QueryCode::RangeTooLarge,
                    format!("at most {MAX_EVENT_RANGE} heights per query"),
                ));
            }
            let events = store
                .events_in_range(from, to)
                .map_err(|e| fail(QueryCode::NotFound, e.to_string()))?;
            to_value(&events)
        }
        ["", "governance"] => Ok(json!({
            "nonce": state.governance_nonce,
            "validators": state
                .validators
                .iter()
                .map(|(key, power)| json!({ "public_key": key, "power": power }))
                .collect::<Vec<_>>(),
        })),
        _ => Err(fail(
            QueryCode::UnknownPath,
            format!(
                "unknown query path {path:?}; known: /members, /member/{{id}}, /entity/{{type}}/{{id}}, /origin/{{id}}/seq, /events/{{from}}/{{to}}, /governance"
            ),
        )),
    }
}
