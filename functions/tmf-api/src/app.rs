//! The axum router and its handlers.
//!
//! Routes, below the API base path (`/tmf-api/productCatalogManagement/v4`):
//!
//! | method | path | answer |
//! | --- | --- | --- |
//! | POST | `/{resource}` | 201, `Location` = `href` |
//! | GET | `/{resource}` | 200 (whole result) or 206 (a page), `X-Total-Count`, `X-Result-Count` |
//! | GET | `/{resource}/{id}` | 200, the newest version; `ETag: "<n>"`, `Content-Location` = its version URL |
//! | GET | `/{resource}/{id}/version/{n}` | 200, exactly version `n` (immutable) |
//! | PATCH | `/{resource}/{id}` | 200 (merge patch; `If-Match` honoured) |
//! | DELETE | `/{resource}/{id}` | 204 |
//! | POST | `/hub` | 201 |
//! | DELETE | `/hub/{id}` | 204 |
//! | GET, POST / GET, DELETE | `/importJob`, `/exportJob` / `.../{id}` | 501 |
//!
//! and the replication API beside it (`/replication/v1/...`, see [`crate::replication`]).
//! Entities with an `@audience` are served only to staff and to the members listed
//! ([`crate::audience`]); replicated entities are read-only here.
//!
//! Every error is a TMF630 `Error` body. No request can make the service answer 5xx unless
//! the store itself fails (503) or returns unreadable data (500).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_LOCATION, CONTENT_TYPE, ETAG, HOST, IF_MATCH, LOCATION,
    WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use dome_catalog_store::{CatalogStore, ChangeKind, EntityVersion, StoreError, Subscription};
use dome_events::MemberId;
use dome_tmf::schema::Mode;
use dome_tmf::{
    notification, uuid_v4, ApiSpec, ErrorCode, EventKind, HubQuery, PatchOutcome, Query,
    QueryLimits, ResourceDescriptor, Timestamp, TmfError,
};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::audience::{
    is_staff, restricted_audience, unix_now, validate_audience, ReadGate, ReadRefusal,
};
use crate::auth::{bearer_token, AuthError, Principal, TokenVerifier};
use crate::members::MemberDirectory;
use crate::notify::NotificationSink;

/// The media type of every JSON answer.
pub const JSON_UTF8: &str = "application/json;charset=utf-8";
/// Heads read per store call while listing. Non-matching heads are dropped after each page,
/// so this bounds what one list holds in memory besides its answer.
const LIST_PAGE: usize = 200;
/// How many lists may scan the store at once: see [`ListScans`].
fn concurrent_list_scans() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

/// Permits to scan the store for a list. A scan holds a decoded page of heads (up to
/// `LIST_PAGE` `serde_json::Value` trees of several KiB each) from the store read until it
/// has been filtered; with one scan per connection, 32 connections listing at once held
/// dozens of pages and took the server from 24 to 76 MiB (docs/benchmarks.md). Scans are
/// CPU-bound (decoding and filtering), so more of them than cores do not finish sooner:
/// further lists wait here instead of holding pages.
#[derive(Clone)]
struct ListScans(Arc<Semaphore>);

/// Longest id looked up (the store refuses longer ones; nothing longer can exist).
const MAX_ID_LEN: usize = dome_catalog_store::MAX_ID_LEN;

/// Everything the handlers share.
pub struct AppState {
    pub api: Arc<ApiSpec>,
    pub store: Arc<dyn CatalogStore>,
    /// `None`: authentication disabled (local conformance runs only).
    pub verifier: Option<Arc<dyn TokenVerifier>>,
    pub notifier: Arc<dyn NotificationSink>,
    /// Prefix of every `href`; `None` on Lambda: the function URL's domain is used.
    pub public_base_url: Option<String>,
    pub max_body_bytes: usize,
    pub limits: QueryLimits,
    /// The member registry that signed fetches are checked against; `None`: restricted
    /// (`@audience`) versions are served to bearer-token callers only.
    pub members: Option<Arc<dyn MemberDirectory>>,
    /// This marketplace's member id on the bus, shown by `/replication/v1/status`.
    pub member_id: Option<MemberId>,
}

/// A failed request: a TMF error body with its status.
#[derive(Debug)]
pub struct Failure(pub TmfError);

impl Failure {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(TmfError::new(code, message))
    }
}

impl<E: Into<TmfError>> From<E> for Failure {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let value = serde_json::to_value(&self.0).unwrap_or_else(|_| json!({}));
        let mut response = json_response(status, &value);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"dome\""),
            );
        }
        response
    }
}

type Answer = Result<Response, Failure>;

pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    response
}

pub(crate) fn header_value(text: &str) -> Result<HeaderValue, Failure> {
    HeaderValue::from_str(text)
        .map_err(|_| Failure::new(ErrorCode::Internal, "unrepresentable header value"))
}

fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

pub(crate) fn store_failure(e: StoreError) -> Failure {
    match e {
        StoreError::Conflict(message) => Failure::new(
            ErrorCode::Conflict,
            format!("the entity was changed concurrently; read it again and retry ({message})"),
        ),
        StoreError::BadRequest(message) => Failure::new(ErrorCode::InvalidBody, message),
        StoreError::Unavailable(message) => {
            tracing::error!(error = %message, "store unavailable");
            Failure::new(
                ErrorCode::ServiceUnavailable,
                "the store is unavailable; retry later",
            )
        }
        StoreError::Corrupt(message) => {
            tracing::error!(error = %message, "corrupt record in the store");
            Failure::new(ErrorCode::Internal, "a stored record could not be read")
        }
    }
}

fn random_id() -> Result<String, Failure> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| {
        tracing::error!(error = %e, "no randomness");
        Failure::new(ErrorCode::Internal, "could not generate an id")
    })?;
    Ok(uuid_v4(bytes))
}

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

/// Builds the router for `state.api`.
pub fn router(state: AppState) -> Router {
    let base = state.api.base_path.to_string();
    let state = Arc::new(state);
    // Handed to the list handler alone (not as a request extension, which every request
    // would pay for).
    let scans = ListScans(Arc::new(Semaphore::new(concurrent_list_scans())));
    let list = move |state, path, query, headers| list(state, path, query, headers, scans.clone());
    Router::new()
        .route(&format!("{base}/hub"), post(register_listener))
        .route(&format!("{base}/hub/{{id}}"), delete(unregister_listener))
        // The operations TMF620 declares for the jobs answer 501; other methods 405.
        .route(
            &format!("{base}/importJob"),
            get(not_implemented).post(not_implemented),
        )
        .route(
            &format!("{base}/importJob/{{id}}"),
            get(not_implemented).delete(not_implemented),
        )
        .route(
            &format!("{base}/exportJob"),
            get(not_implemented).post(not_implemented),
        )
        .route(
            &format!("{base}/exportJob/{{id}}"),
            get(not_implemented).delete(not_implemented),
        )
        .route(&format!("{base}/{{resource}}"), get(list).post(create))
        .route(
            &format!("{base}/{{resource}}/{{id}}"),
            get(retrieve).patch(patch).delete(remove),
        )
        .route(
            &format!("{base}/{{resource}}/{{id}}/version/{{version}}"),
            get(retrieve_version),
        )
        .merge(crate::replication::routes())
        .fallback(unknown_path)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(log_requests))
        .with_state(state)
}

async fn log_requests(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    // A clone of the URI shares its bytes: no copy of the path per request.
    let uri = request.uri().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let path = uri.path();
    // 501 (importJob, exportJob) is an expected answer, not a fault.
    if status >= 500 && status != 501 {
        tracing::error!(%method, path, status, elapsed_ms, "request");
    } else {
        tracing::info!(%method, path, status, elapsed_ms, "request");
    }
    response
}

async fn unknown_path() -> Failure {
    Failure::new(ErrorCode::NotFound, "no such path in this API")
}

async fn method_not_allowed() -> Failure {
    Failure::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this path",
    )
}

async fn not_implemented() -> Failure {
    Failure::new(
        ErrorCode::NotImplemented,
        "importJob and exportJob are not implemented by this catalogue",
    )
}

/// Resolves the `{resource}` segment.
fn descriptor<'a>(state: &'a AppState, segment: &str) -> Result<&'a ResourceDescriptor, Failure> {
    state.api.resource(segment).ok_or_else(|| {
        Failure::new(
            ErrorCode::NotFound,
            format!("no resource {segment:?} in {}", state.api.id),
        )
    })
}

fn path_failure(_: PathRejection) -> Failure {
    Failure::new(ErrorCode::NotFound, "no such path in this API")
}

/// Requires a valid bearer token for a change, unless authentication is disabled.
async fn authorize(state: &AppState, headers: &HeaderMap) -> Result<Principal, Failure> {
    require_token(
        state,
        headers,
        "this request changes the catalogue: send Authorization: Bearer <token>",
    )
    .await
}

/// Requires a valid bearer token, unless authentication is disabled; `missing` says why when
/// the request carries none.
pub(crate) async fn require_token(
    state: &AppState,
    headers: &HeaderMap,
    missing: &'static str,
) -> Result<Principal, Failure> {
    let Some(verifier) = &state.verifier else {
        return Ok(Principal {
            subject: "anonymous".into(),
        });
    };
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .ok_or_else(|| Failure::new(ErrorCode::Unauthorized, missing))?;
    verifier.verify(token).await.map_err(|e| match e {
        AuthError::InvalidToken => {
            Failure::new(ErrorCode::Unauthorized, "the bearer token is not valid")
        }
        AuthError::Unavailable(reason) => {
            tracing::error!(%reason, "token verification unavailable");
            Failure::new(
                ErrorCode::ServiceUnavailable,
                "the token could not be checked; retry later",
            )
        }
    })
}

/// Accepts `application/json` (any parameters), and `application/merge-patch+json` when
/// `merge_patch` is allowed.
fn require_json(headers: &HeaderMap, merge_patch: bool) -> Result<(), Failure> {
    let supported = if merge_patch {
        "application/merge-patch+json or application/json"
    } else {
        "application/json"
    };
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Err(Failure::new(
            ErrorCode::UnsupportedMediaType,
            format!("missing Content-Type: send {supported}"),
        ));
    };
    let media = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media == "application/json" || (merge_patch && media == "application/merge-patch+json") {
        Ok(())
    } else {
        Err(Failure::new(
            ErrorCode::UnsupportedMediaType,
            format!("Content-Type {media:?} is not supported: send {supported}"),
        ))
    }
}

fn is_length_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// Reads the whole body, refusing more than `limit` bytes.
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, Failure> {
    let too_large = || {
        Failure::new(
            ErrorCode::PayloadTooLarge,
            format!("the body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(e) if is_length_limit(&e) => Err(too_large()),
        Err(e) => Err(Failure::new(
            ErrorCode::InvalidJson,
            format!("the body could not be read: {e}"),
        )),
    }
}

fn parse_json(bytes: &[u8]) -> Result<Value, Failure> {
    serde_json::from_slice(bytes).map_err(|e| {
        Failure::new(
            ErrorCode::InvalidJson,
            format!("the body is not valid JSON: {e}"),
        )
    })
}

/// The scheme and authority of hrefs: the configured base URL, else (on Lambda) the function
/// URL's domain name from the request context, else the `Host` header.
fn base_url(state: &AppState, request: &axum::http::request::Parts) -> String {
    if let Some(url) = &state.public_base_url {
        return url.clone();
    }
    if let Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) =
        request
            .extensions
            .get::<lambda_http::request::RequestContext>()
    {
        if let Some(domain) = &ctx.domain_name {
            return format!("https://{domain}");
        }
    }
    let host = request
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()) && !h.contains('/'))
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn check_id(id: &str) -> Result<(), Failure> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(Failure::new(ErrorCode::NotFound, "no entity with that id"));
    }
    Ok(())
}

/// The head of a live entity, or 404.
async fn live_head(
    state: &AppState,
    resource: &ResourceDescriptor,
    id: &str,
) -> Result<EntityVersion, Failure> {
    check_id(id)?;
    match state
        .store
        .head(resource.name, id)
        .await
        .map_err(store_failure)?
    {
        Some(head) if !head.deleted => Ok(head),
        Some(_) => Err(Failure::new(
            ErrorCode::NotFound,
            format!("{} {id} was deleted", resource.name),
        )),
        None => Err(Failure::new(
            ErrorCode::NotFound,
            format!("no {} with id {id}", resource.name),
        )),
    }
}

/// Replicated entities belong to their origin: changing the copy here would fork it from what
/// the bus announced, and the next replicated version would overwrite the change anyway.
fn refuse_replica(head: &EntityVersion) -> Result<(), Failure> {
    match &head.provenance {
        Some(provenance) => Err(Failure::new(
            ErrorCode::Forbidden,
            format!(
                "replicated from {}; change it at its origin",
                provenance.origin
            ),
        )),
        None => Ok(()),
    }
}

fn check_if_match(headers: &HeaderMap, version: u64) -> Result<(), Failure> {
    let Some(value) = headers.get(IF_MATCH) else {
        return Ok(());
    };
    let current = etag(version);
    let text = value.to_str().unwrap_or("");
    let matches = text.trim() == "*"
        || text
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == current);
    if matches {
        Ok(())
    } else {
        Err(Failure::new(
            ErrorCode::PreconditionFailed,
            format!("If-Match {text:?} does not match the current version {current}"),
        ))
    }
}

async fn notify(state: &AppState, resource: &ResourceDescriptor, kind: EventKind, entity: &Value) {
    let event_id = match random_id() {
        Ok(id) => id,
        Err(_) => return,
    };
    let event = notification(resource, kind, entity, &event_id, now());
    state.notifier.publish(event).await;
}

/// An entity answer: its version as `ETag` and, as `Content-Location`, the stable URL of
/// exactly that version (`{href}/version/{n}`).
fn entity_response(status: StatusCode, body: &Value, version: u64) -> Answer {
    let mut response = json_response(status, body);
    let headers = response.headers_mut();
    headers.insert(ETAG, header_value(&etag(version))?);
    if let Some(href) = body.get("href").and_then(Value::as_str) {
        if let Ok(location) = HeaderValue::from_str(&format!("{href}/version/{version}")) {
            headers.insert(CONTENT_LOCATION, location);
        }
    }
    Ok(response)
}

async fn create(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Answer {
    let Path(segment) = path.map_err(path_failure)?;
    let resource = descriptor(&state, &segment)?;
    let (parts, body) = request.into_parts();
    let principal = authorize(&state, &parts.headers).await?;
    require_json(&parts.headers, false)?;
    let bytes = read_body(body, &parts.headers, state.max_body_bytes).await?;
    let input = parse_json(&bytes)?;
    let id = random_id()?;
    let href = state.api.href(&base_url(&state, &parts), resource, &id);
    let entity = state
        .api
        .prepare_create(resource, input, &id, &href, now())?;
    validate_audience(&entity).map_err(|m| Failure::new(ErrorCode::InvalidBody, m))?;
    let last_update = entity
        .get("lastUpdate")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let first = EntityVersion {
        resource: resource.name.to_string(),
        id: id.clone(),
        version: 1,
        body: entity.clone(),
        last_update,
        deleted: false,
        provenance: None,
    };
    let seq = state
        .store
        .create(first, ChangeKind::Create)
        .await
        .map_err(store_failure)?;
    tracing::info!(subject = %principal.subject, resource = resource.name, %id, version = 1, seq, "created");
    notify(&state, resource, EventKind::Create, &entity).await;
    let mut response = entity_response(StatusCode::CREATED, &entity, 1)?;
    response
        .headers_mut()
        .insert(LOCATION, header_value(&href)?);
    Ok(response)
}

/// Answers `query` over every live head of `resource`, read page by page in id order; only
/// the items the answer can contain are kept between pages. Returns the page and the total.
/// Entities restricted to an audience are left out unless `include_restricted` (staff).
async fn query_heads(
    state: &AppState,
    scans: &ListScans,
    resource: &ResourceDescriptor,
    query: &Query,
    include_restricted: bool,
) -> Result<(Vec<Value>, usize), Failure> {
    let _scan = scans.0.acquire().await.map_err(|_| {
        // The semaphore is never closed; this only keeps a broken invariant from panicking.
        store_failure(StoreError::Unavailable("list scans closed".into()))
    })?;
    let mut collector = query.collector();
    let mut cursor = None;
    loop {
        let page = state
            .store
            .list_heads(resource.name, cursor, LIST_PAGE)
            .await
            .map_err(store_failure)?;
        for head in page.items {
            if !head.deleted && (include_restricted || restricted_audience(&head.body).is_none()) {
                collector.push(head.body);
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(collector.finish()),
        }
    }
}

async fn list(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    scans: ListScans,
) -> Answer {
    let Path(segment) = path.map_err(path_failure)?;
    let resource = descriptor(&state, &segment)?;
    let query = Query::parse(raw.as_deref().unwrap_or(""), &state.limits)?;
    let staff = is_staff(state.verifier.as_deref(), &headers)
        .await
        .map_err(refusal)?
        .is_some();
    let (page, total) = query_heads(&state, &scans, resource, &query, staff).await?;
    let status = if page.len() == total {
        StatusCode::OK
    } else {
        StatusCode::PARTIAL_CONTENT
    };
    let count = page.len();
    let mut response = json_response(status, &Value::Array(page));
    let headers = response.headers_mut();
    headers.insert("x-total-count", HeaderValue::from(total));
    headers.insert("x-result-count", HeaderValue::from(count));
    Ok(response)
}

fn refusal(refusal: ReadRefusal) -> Failure {
    match refusal {
        ReadRefusal::Forbidden(message) => Failure::new(ErrorCode::Forbidden, message),
        ReadRefusal::Unavailable(message) => Failure::new(ErrorCode::ServiceUnavailable, message),
    }
}

/// Lets the request read `body` if it is public, or if the caller is staff or a member of its
/// `@audience` proven by a signed fetch of exactly this request target; 403 otherwise.
async fn admit_reader(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
    body: &Value,
) -> Result<(), Failure> {
    let Some(audience) = restricted_audience(body) else {
        return Ok(());
    };
    let gate = ReadGate {
        verifier: state.verifier.as_deref(),
        members: state.members.as_deref(),
        now_unix: unix_now(),
    };
    let target = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let reader = gate
        .check(headers, method.as_str(), target, &audience)
        .await
        .map_err(refusal)?;
    tracing::debug!(?reader, target, "restricted read admitted");
    Ok(())
}

async fn retrieve(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Answer {
    let Path((segment, id)) = path.map_err(path_failure)?;
    let resource = descriptor(&state, &segment)?;
    let query = Query::parse_selection(raw.as_deref().unwrap_or(""), &state.limits)?;
    let head = live_head(&state, resource, &id).await?;
    admit_reader(&state, &headers, &method, &uri, &head.body).await?;
    if query.fields.is_none() {
        return entity_response(StatusCode::OK, &head.body, head.version);
    }
    entity_response(StatusCode::OK, &query.project(&head.body), head.version)
}

async fn retrieve_version(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Answer {
    let Path((segment, id, version_text)) = path.map_err(path_failure)?;
    let resource = descriptor(&state, &segment)?;
    let query = Query::parse_selection(raw.as_deref().unwrap_or(""), &state.limits)?;
    check_id(&id)?;
    let not_found = || {
        Failure::new(
            ErrorCode::NotFound,
            format!("no version {version_text} of {} {id}", resource.name),
        )
    };
    let version: u64 = version_text
        .parse()
        .ok()
        .filter(|v| *v >= 1 && version_text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(not_found)?;
    let found = state
        .store
        .version(resource.name, &id, version)
        .await
        .map_err(store_failure)?;
    if let Some(v) = found.as_ref().filter(|v| !v.deleted) {
        admit_reader(&state, &headers, &method, &uri, &v.body).await?;
    }
    match found {
        Some(v) if !v.deleted && query.fields.is_none() => {
            entity_response(StatusCode::OK, &v.body, v.version)
        }
        Some(v) if !v.deleted => {
            entity_response(StatusCode::OK, &query.project(&v.body), v.version)
        }
        Some(_) => Err(Failure::new(
            ErrorCode::NotFound,
            format!(
                "version {version} of {} {id} is its deletion",
                resource.name
            ),
        )),
        None => Err(not_found()),
    }
}

async fn patch(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
) -> Answer {
    let Path((segment, id)) = path.map_err(path_failure)?;
    let resource = descriptor(&state, &segment)?;
    let (parts, body) = request.into_parts();
    let principal = authorize(&state, &parts.headers).await?;
    require_json(&parts.headers, true)?;
    let bytes = read_body(body, &parts.headers, state.max_body_bytes).await?;
    let document = parse_json(&bytes)?;
    let head = live_head(&state, resource, &id).await?;
    refuse_replica(&head)?;
    check_if_match(&parts.headers, head.version)?;
    let outcome = state
        .api
        .prepare_patch(resource, &head.body, head.version, &document, now())?;
    let PatchOutcome::Changed { body, events } = outcome else {
        return entity_response(StatusCode::OK, &head.body, head.version);
    };
    validate_audience(&body).map_err(|m| Failure::new(ErrorCode::InvalidBody, m))?;
    let change = if events.contains(&EventKind::StateChange) {
        ChangeKind::StateChange
    } else {
        ChangeKind::Update
    };
    let version = head.version + 1;
    let next = EntityVersion {
        resource: resource.name.to_string(),
        id: id.clone(),
        version,
        body: body.clone(),
        last_update: body
            .get("lastUpdate")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        deleted: false,
        provenance: None,
    };
    let seq = state
        .store
        .append(next, change)
        .await
        .map_err(store_failure)?;
    tracing::info!(subject = %principal.subject, resource = resource.name, %id, version, seq, ?change, "patched");
    for kind in events {
        notify(&state, resource, kind, &body).await;
    }
    entity_response(StatusCode::OK, &body, version)
}

async fn remove(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Answer {
    let Path((segment, id)) = path.map_err(path_failure)?;
    let resource = descriptor(&state, &segment)?;
    let principal = authorize(&state, &headers).await?;
    let head = live_head(&state, resource, &id).await?;
    refuse_replica(&head)?;
    check_if_match(&headers, head.version)?;
    let version = head.version + 1;
    let tombstone = EntityVersion {
        resource: resource.name.to_string(),
        id: id.clone(),
        version,
        body: head.body.clone(),
        last_update: dome_tmf::entity::next_last_update(now(), Some(&head.last_update))
            .to_rfc3339_millis(),
        deleted: true,
        provenance: None,
    };
    let seq = state
        .store
        .append(tombstone, ChangeKind::Delete)
        .await
        .map_err(store_failure)?;
    tracing::info!(subject = %principal.subject, resource = resource.name, %id, version, seq, "deleted");
    notify(&state, resource, EventKind::Delete, &head.body).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `callback` must be an absolute http(s) URL.
fn check_callback(callback: &str) -> Result<(), Failure> {
    let invalid = |why: &str| Failure::new(ErrorCode::InvalidBody, format!("callback: {why}"));
    let url = reqwest::Url::parse(callback).map_err(|e| invalid(&format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("must be an absolute http or https URL"));
    }
    Ok(())
}

async fn register_listener(State(state): State<Arc<AppState>>, request: Request) -> Answer {
    let (parts, body) = request.into_parts();
    let principal = authorize(&state, &parts.headers).await?;
    require_json(&parts.headers, false)?;
    let bytes = read_body(body, &parts.headers, state.max_body_bytes).await?;
    let input = parse_json(&bytes)?;
    state
        .api
        .definitions()
        .validate("EventSubscriptionInput", &input, Mode::Full)
        .map_err(|e| Failure::new(ErrorCode::InvalidBody, e.to_string()))?;
    let callback = input
        .get("callback")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    check_callback(&callback)?;
    let query = input
        .get("query")
        .and_then(Value::as_str)
        .map(str::to_string)
        .filter(|q| !q.trim().is_empty());
    if let Some(q) = &query {
        HubQuery::parse(q, &state.limits)
            .map_err(|e| Failure::new(ErrorCode::InvalidBody, format!("query: {e}")))?;
    }
    let id = random_id()?;
    state
        .store
        .put_subscription(Subscription {
            id: id.clone(),
            callback: callback.clone(),
            query: query.clone(),
        })
        .await
        .map_err(store_failure)?;
    tracing::info!(subject = %principal.subject, %id, %callback, "listener registered");
    let mut answer = json!({"id": id, "callback": callback});
    if let Some(q) = query {
        answer["query"] = Value::String(q);
    }
    let location = format!(
        "{}{}/hub/{id}",
        base_url(&state, &parts),
        state.api.base_path
    );
    let mut response = json_response(StatusCode::CREATED, &answer);
    response
        .headers_mut()
        .insert(LOCATION, header_value(&location)?);
    Ok(response)
}

async fn unregister_listener(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Answer {
    let Path(id) = path.map_err(path_failure)?;
    let principal = authorize(&state, &headers).await?;
    let not_found = || Failure::new(ErrorCode::NotFound, format!("no listener with id {id}"));
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(not_found());
    }
    if state
        .store
        .delete_subscription(&id)
        .await
        .map_err(store_failure)?
    {
        tracing::info!(subject = %principal.subject, %id, "listener unregistered");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(not_found())
    }
}
