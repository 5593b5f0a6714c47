//! What the API does for replication: `@audience` validation, restricted reads (bearer
//! tokens and signed fetches checked against a member registry), read-only replicas and the
//! replication API (`/replication/v1/...`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use dome_catalog_store::{
    records, AuditRecord, CatalogStore, ChangeKind, DeadLetter, Decision, EmbeddedStore,
    EntityVersion, Provenance,
};
use dome_events::fetch_auth::sign_fetch;
use dome_events::{MemberId, MemberKeypair, PublicKey};
use dome_tmf::{ApiSpec, QueryLimits};
use dome_tmf_api::audience::{unix_now, MAX_FETCH_SKEW_SECONDS};
use dome_tmf_api::auth::TokenVerifier;
use dome_tmf_api::members::{BusMemberDirectory, DirectoryError, MemberDirectory};
use dome_tmf_api::notify::{HttpTransport, InProcessNotifier, RetryPolicy};
use dome_tmf_api::replication::last_outbox_seq;
use dome_tmf_api::{router, AppState, StaticTokens};
use serde_json::{json, Value};
use tower::ServiceExt;

const BASE: &str = "/tmf-api/productCatalogManagement/v4";
const PUBLIC: &str = "https://market-a.example";
const TOKEN: &str = "staff-token";

fn keypair(seed: u8) -> MemberKeypair {
    MemberKeypair::from_seed([seed; 32])
}

fn member(id: &str) -> MemberId {
    MemberId::new(id).expect("valid member id")
}

/// A registry in memory: id → (key, active). Counts lookups; can be made to fail.
#[derive(Default)]
struct FakeDirectory {
    members: HashMap<MemberId, (PublicKey, bool)>,
    down: bool,
    lookups: AtomicUsize,
}

impl FakeDirectory {
    /// member-b and member-c are active, member-gone was removed.
    fn federation() -> Self {
        let mut members = HashMap::new();
        members.insert(member("member-b"), (keypair(2).public_key(), true));
        members.insert(member("member-c"), (keypair(3).public_key(), true));
        members.insert(member("member-gone"), (keypair(4).public_key(), false));
        Self {
            members,
            ..Self::default()
        }
    }
}

#[async_trait]
impl MemberDirectory for FakeDirectory {
    async fn member(&self, id: &MemberId) -> Result<Option<(PublicKey, bool)>, DirectoryError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        if self.down {
            return Err(DirectoryError::Unavailable("test registry is down".into()));
        }
        Ok(self.members.get(id).copied())
    }
}

struct Api {
    router: Router,
    store: Arc<dyn CatalogStore>,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a TMF error body with this status and code; returns its message.
    fn tmf_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(self.body["code"], code, "{}", self.text);
        assert_eq!(self.body["status"], status.to_string(), "{}", self.text);
        self.body["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl Api {
    fn new(members: Option<Arc<dyn MemberDirectory>>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn CatalogStore> =
            Arc::new(EmbeddedStore::open(dir.path().join("catalog.redb")).expect("store"));
        let limits = QueryLimits::default();
        let transport = Arc::new(HttpTransport::new(Duration::from_secs(5)).expect("client"));
        let notifier = Arc::new(InProcessNotifier::start(
            Arc::clone(&store),
            transport,
            RetryPolicy::default(),
            limits.clone(),
        ));
        let verifier: Option<Arc<dyn TokenVerifier>> = Some(Arc::new(StaticTokens::new([TOKEN])));
        let state = AppState {
            api: Arc::new(ApiSpec::tmf620().expect("spec")),
            store: Arc::clone(&store),
            verifier,
            notifier,
            public_base_url: Some(PUBLIC.into()),
            max_body_bytes: 1024 * 1024,
            limits,
            members,
            member_id: Some(member("member-a")),
        };
        Self {
            router: router(state),
            store,
            _dir: dir,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Option<Value>,
    ) -> Answer {
        let mut builder = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, value.as_str());
        }
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let request = builder.body(Body::from(bytes)).expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    fn staff() -> Vec<(&'static str, String)> {
        vec![
            ("authorization", format!("Bearer {TOKEN}")),
            ("content-type", "application/json".into()),
        ]
    }

    async fn write(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send(method, &format!("{BASE}{path}"), &Self::staff(), body)
            .await
    }

    async fn get(&self, path: &str, headers: &[(&str, String)]) -> Answer {
        self.send(Method::GET, path, headers, None).await
    }

    async fn create(&self, resource: &str, body: Value) -> Value {
        let answer = self
            .write(Method::POST, &format!("/{resource}"), Some(body))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
        answer.body
    }

    async fn outbox_len(&self) -> usize {
        self.store
            .outbox_after(0, 10_000)
            .await
            .expect("outbox")
            .len()
    }
}

/// Signed-fetch headers of `who` (seed `seed`) for GET `path` at `at`.
fn signed(who: &str, seed: u8, path: &str, at: u64) -> Vec<(&'static str, String)> {
    sign_fetch(&keypair(seed), &member(who), "GET", path, at)
}

#[tokio::test]
async fn audience_is_validated_on_create_and_patch() {
    let api = Api::new(None);
    let too_many: Vec<String> = (0..65).map(|i| format!("m{i}")).collect();
    for bad in [
        json!([]),
        json!(too_many),
        json!("member-b"),
        json!(null),
        json!({"member-b": true}),
        json!(["member-b", 3]),
        json!(["Member-B"]),
        json!(["member b"]),
        json!(["member-b", "member-b"]),
    ] {
        let answer = api
            .write(
                Method::POST,
                "/productOffering",
                Some(json!({"name": "x", "@audience": bad})),
            )
            .await;
        let message = answer.tmf_error(400, "InvalidBody");
        assert!(message.contains("@audience"), "{bad}: {message}");
    }
    assert_eq!(
        api.outbox_len().await,
        0,
        "nothing stored for a bad audience"
    );

    let offering = api
        .create(
            "productOffering",
            json!({"name": "Restricted", "@audience": ["member-b", "member-c"]}),
        )
        .await;
    assert_eq!(offering["@audience"], json!(["member-b", "member-c"]));
    let id = offering["id"].as_str().expect("id");

    for bad in [json!([]), json!(["member-b", "member-b"]), json!("all")] {
        let answer = api
            .write(
                Method::PATCH,
                &format!("/productOffering/{id}"),
                Some(json!({ "@audience": bad })),
            )
            .await;
        assert!(answer.tmf_error(400, "InvalidBody").contains("@audience"));
    }
    let head = api
        .store
        .head("productOffering", id)
        .await
        .expect("head")
        .expect("exists");
    assert_eq!(head.version, 1, "a refused PATCH stores nothing");
    assert_eq!(api.outbox_len().await, 1);

    // a valid change of audience, then dropping it (the entity becomes public)
    let narrowed = api
        .write(
            Method::PATCH,
            &format!("/productOffering/{id}"),
            Some(json!({"@audience": ["member-c"]})),
        )
        .await;
    assert_eq!(narrowed.status, StatusCode::OK, "{}", narrowed.text);
    assert_eq!(narrowed.body["@audience"], json!(["member-c"]));
    let public = api
        .write(
            Method::PATCH,
            &format!("/productOffering/{id}"),
            Some(json!({"@audience": null})),
        )
        .await;
    assert_eq!(public.status, StatusCode::OK, "{}", public.text);
    assert!(public.body.get("@audience").is_none());
    let anyone = api.get(&format!("{BASE}/productOffering/{id}"), &[]).await;
    assert_eq!(anyone.status, StatusCode::OK, "{}", anyone.text);
}

#[tokio::test]
async fn restricted_reads() {
    let directory = Arc::new(FakeDirectory::federation());
    let api = Api::new(Some(directory.clone()));
    let restricted = api
        .create(
            "productOffering",
            json!({"name": "For B", "@audience": ["member-b", "member-gone"]}),
        )
        .await;
    let id = restricted["id"].as_str().expect("id").to_string();
    let public = api
        .create("productOffering", json!({"name": "For all"}))
        .await;
    let public_id = public["id"].as_str().expect("id").to_string();
    // version 2, so that a signature for version 1 can be replayed against it
    let patched = api
        .write(
            Method::PATCH,
            &format!("/productOffering/{id}"),
            Some(json!({"description": "second"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);

    let by_id = format!("{BASE}/productOffering/{id}");
    let v1 = format!("{by_id}/version/1");
    let v2 = format!("{by_id}/version/2");
    let now = unix_now();

    // public entities need nothing
    let open = api
        .get(
            &format!("{BASE}/productOffering/{public_id}/version/1"),
            &[],
        )
        .await;
    assert_eq!(open.status, StatusCode::OK, "{}", open.text);

    // no credentials
    for path in [&by_id, &v1] {
        let message = api.get(path, &[]).await.tmf_error(403, "Forbidden");
        assert!(message.contains("restricted"), "{message}");
    }
    // a wrong bearer token is no better
    let wrong = [("authorization", "Bearer nope".to_string())];
    api.get(&by_id, &wrong).await.tmf_error(403, "Forbidden");

    // staff
    let staff = [("authorization", format!("Bearer {TOKEN}"))];
    let read = api.get(&by_id, &staff).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert_eq!(read.body["version"], "2");
    assert_eq!(api.get(&v1, &staff).await.status, StatusCode::OK);

    // a member in the audience, signing exactly the target it asks for
    for path in [&by_id, &v1, &v2] {
        let answer = api.get(path, &signed("member-b", 2, path, now)).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text);
    }
    let fields = format!("{v1}?fields=name");
    let projected = api.get(&fields, &signed("member-b", 2, &fields, now)).await;
    assert_eq!(projected.status, StatusCode::OK, "{}", projected.text);
    assert_eq!(projected.body["name"], "For B");
    assert!(projected.body.get("description").is_none());

    // a member outside the audience, with a valid signature
    let outside = api.get(&v1, &signed("member-c", 3, &v1, now)).await;
    assert!(outside
        .tmf_error(403, "Forbidden")
        .contains("not in this entity's audience"));

    // not a member at all
    let stranger = api.get(&v1, &signed("member-x", 9, &v1, now)).await;
    assert!(stranger
        .tmf_error(403, "Forbidden")
        .contains("not a member"));

    // a removed member, even though listed in the audience
    let gone = api.get(&v1, &signed("member-gone", 4, &v1, now)).await;
    assert!(gone.tmf_error(403, "Forbidden").contains("removed"));

    // stale and future timestamps
    let old = now - MAX_FETCH_SKEW_SECONDS - 60;
    let stale = api.get(&v1, &signed("member-b", 2, &v1, old)).await;
    assert!(stale.tmf_error(403, "Forbidden").contains("too old"));
    let ahead = now + MAX_FETCH_SKEW_SECONDS + 60;
    let future = api.get(&v1, &signed("member-b", 2, &v1, ahead)).await;
    assert!(future.tmf_error(403, "Forbidden").contains("future"));

    // tampering: a signature for version 1 replayed on version 2, a flipped signature byte,
    // member-c claiming to be member-b with its own key
    let replayed = api.get(&v2, &signed("member-b", 2, &v1, now)).await;
    assert!(replayed
        .tmf_error(403, "Forbidden")
        .contains("does not verify"));
    let mut flipped = signed("member-b", 2, &v1, now);
    let mut raw = BASE64.decode(&flipped[2].1).expect("base64");
    raw[10] ^= 0x40;
    flipped[2].1 = BASE64.encode(raw);
    api.get(&v1, &flipped).await.tmf_error(403, "Forbidden");
    let impostor = api.get(&v1, &signed("member-b", 3, &v1, now)).await;
    assert!(impostor
        .tmf_error(403, "Forbidden")
        .contains("does not verify"));
    // incomplete or malformed headers
    let partial = vec![("x-dome-member", "member-b".to_string())];
    assert!(api
        .get(&v1, &partial)
        .await
        .tmf_error(403, "Forbidden")
        .contains("missing"));
    let mut garbled = signed("member-b", 2, &v1, now);
    garbled[1].1 = "yesterday".into();
    api.get(&v1, &garbled).await.tmf_error(403, "Forbidden");

    // lists: restricted entities only for staff, never for members or the public
    let list = format!("{BASE}/productOffering");
    let anonymous = api.get(&list, &[]).await;
    assert_eq!(anonymous.body.as_array().map(Vec::len), Some(1));
    assert_eq!(anonymous.body[0]["id"], public_id.as_str());
    assert_eq!(anonymous.header("x-total-count"), Some("1"));
    let as_member = api.get(&list, &signed("member-b", 2, &list, now)).await;
    assert_eq!(as_member.body.as_array().map(Vec::len), Some(1));
    let as_staff = api.get(&list, &staff).await;
    assert_eq!(as_staff.body.as_array().map(Vec::len), Some(2));

    // a registry that cannot be read: 503, not a guess
    let down = Arc::new(FakeDirectory {
        down: true,
        ..FakeDirectory::federation()
    });
    let api_down = Api::new(Some(down));
    let created = api_down
        .create(
            "productOffering",
            json!({"name": "x", "@audience": ["member-b"]}),
        )
        .await;
    let path = format!(
        "{BASE}/productOffering/{}",
        created["id"].as_str().expect("id")
    );
    api_down
        .get(&path, &signed("member-b", 2, &path, now))
        .await
        .tmf_error(503, "ServiceUnavailable");
    assert!(directory.lookups.load(Ordering::SeqCst) > 0);
}

#[tokio::test]
async fn without_a_registry_only_staff_reads_restricted_versions() {
    let api = Api::new(None);
    let created = api
        .create(
            "productOffering",
            json!({"name": "x", "@audience": ["member-b"]}),
        )
        .await;
    let path = format!(
        "{BASE}/productOffering/{}/version/1",
        created["id"].as_str().expect("id")
    );
    let member = api
        .get(&path, &signed("member-b", 2, &path, unix_now()))
        .await;
    assert!(member
        .tmf_error(403, "Forbidden")
        .contains("no member registry"));
    let staff = api
        .get(&path, &[("authorization", format!("Bearer {TOKEN}"))])
        .await;
    assert_eq!(staff.status, StatusCode::OK, "{}", staff.text);
}

#[tokio::test]
async fn replicated_entities_are_read_only() {
    let api = Api::new(None);
    let id = "0b5bd2a4-5d3c-4c1e-9a55-f5b0b2a7c001";
    let body = json!({"id": id, "href": format!("https://market-b.example{BASE}/productOffering/{id}"),
                      "name": "From B", "version": "3", "lastUpdate": "2024-05-01T10:00:00.000Z",
                      "lifecycleStatus": "Active", "@type": "ProductOffering"});
    let replica = EntityVersion {
        resource: "productOffering".into(),
        id: id.into(),
        version: 3,
        body: body.clone(),
        last_update: "2024-05-01T10:00:00.000Z".into(),
        deleted: false,
        provenance: Some(Provenance {
            origin: "member-b".into(),
            height: 42,
            tx_hash: "AB".repeat(32),
            content_hash: "cd".repeat(32),
        }),
    };
    api.store.apply_replica(replica).await.expect("applied");

    let path = format!("/productOffering/{id}");
    let patch = api
        .write(Method::PATCH, &path, Some(json!({"name": "Mine now"})))
        .await;
    let message = patch.tmf_error(403, "Forbidden");
    assert!(
        message.contains("replicated from member-b; change it at its origin"),
        "{message}"
    );
    let delete = api.write(Method::DELETE, &path, None).await;
    assert!(delete
        .tmf_error(403, "Forbidden")
        .contains("replicated from member-b"));
    // still requires a token first: an anonymous write is 401, not a hint about the origin
    let anonymous = api
        .send(Method::DELETE, &format!("{BASE}{path}"), &[], None)
        .await;
    anonymous.tmf_error(401, "Unauthorized");

    let head = api
        .store
        .head("productOffering", id)
        .await
        .expect("head")
        .expect("exists");
    assert_eq!((head.version, head.deleted), (3, false));
    assert_eq!(head.body, body);
    assert_eq!(api.outbox_len().await, 0, "nothing announced");
    // reading it works as for any entity
    let read = api.get(&format!("{BASE}{path}"), &[]).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert_eq!(read.body["name"], "From B");
}

fn audit_line(n: u64) -> AuditRecord {
    AuditRecord {
        at: format!("2024-05-01T10:00:0{n}.000Z"),
        origin: "member-b".into(),
        height: 10 + n,
        tx_hash: format!("{n:064X}"),
        resource: "productOffering".into(),
        id: format!("entity-{n}"),
        version: 1,
        decision: if n == 2 {
            Decision::Rejected
        } else {
            Decision::Applied
        },
        reason: (n == 2).then(|| "content hash mismatch".to_string()),
    }
}

#[tokio::test]
async fn replication_api_answers() {
    let api = Api::new(None);
    let status = api.get("/replication/v1/status", &[]).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.text);
    assert_eq!(
        status.body,
        json!({"member": "member-a", "publisherCheckpoint": 0, "outboxLast": 0,
               "relayCheckpoint": 0, "deadLetters": 0})
    );
    // The logs name restricted entities: a token is needed, as for writes.
    for log in ["audit", "deadLetter"] {
        api.get(&format!("/replication/v1/{log}"), &[])
            .await
            .tmf_error(401, "Unauthorized");
        api.get(
            &format!("/replication/v1/{log}"),
            &[("authorization", "Bearer not-a-token".to_owned())],
        )
        .await
        .tmf_error(401, "Unauthorized");
    }
    let empty = api.get("/replication/v1/audit", &Api::staff()).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.text);
    assert_eq!(empty.body, json!([]));
    assert_eq!(empty.header("x-next-cursor"), None);

    for i in 0..5 {
        api.create("category", json!({"name": format!("c{i}")}))
            .await;
    }
    api.store
        .put_record(records::PUBLISHER_CHECKPOINT, "2", None)
        .await
        .expect("record");
    api.store
        .put_record(records::RELAY_CHECKPOINT, "917", None)
        .await
        .expect("record");
    for n in 1..=3 {
        api.store.append_audit(audit_line(n)).await.expect("audit");
    }
    for n in 1..=3u64 {
        api.store
            .put_dead_letter(DeadLetter {
                tx_hash: format!("{n:064X}"),
                height: n,
                event: json!({"origin": "member-b"}),
                reason: "origin unreachable".into(),
                attempts: 5,
                at: "2024-05-01T10:00:00Z".into(),
            })
            .await
            .expect("dead letter");
    }

    let status = api.get("/replication/v1/status", &[]).await;
    assert_eq!(
        status.body,
        json!({"member": "member-a", "publisherCheckpoint": 2, "outboxLast": 5,
               "relayCheckpoint": 917, "deadLetters": 3})
    );

    // the audit trail, page by page
    let first = api
        .get("/replication/v1/audit?limit=2", &Api::staff())
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.body.as_array().map(Vec::len), Some(2));
    assert_eq!(first.body[0]["id"], "entity-1");
    assert_eq!(first.body[1]["decision"], "rejected");
    assert_eq!(first.body[1]["reason"], "content hash mismatch");
    let cursor = first.header("x-next-cursor").expect("more").to_string();
    let second = api
        .get(
            &format!("/replication/v1/audit?limit=2&cursor={cursor}"),
            &Api::staff(),
        )
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    assert_eq!(second.body.as_array().map(Vec::len), Some(1));
    assert_eq!(second.body[0]["id"], "entity-3");
    assert_eq!(second.header("x-next-cursor"), None);

    // dead letters, page by page
    let letters = api
        .get("/replication/v1/deadLetter?limit=2", &Api::staff())
        .await;
    assert_eq!(letters.status, StatusCode::OK, "{}", letters.text);
    assert_eq!(letters.body.as_array().map(Vec::len), Some(2));
    assert_eq!(letters.body[0]["reason"], "origin unreachable");
    let cursor = letters.header("x-next-cursor").expect("more").to_string();
    let rest = api
        .get(
            &format!("/replication/v1/deadLetter?cursor={cursor}"),
            &Api::staff(),
        )
        .await;
    assert_eq!(rest.body.as_array().map(Vec::len), Some(1));

    // bad paging parameters
    for query in [
        "limit=0",
        "limit=abc",
        "limit=100000",
        "cursor=",
        "cursor=%21%21not-a-cursor",
        "page=2",
    ] {
        for log in ["audit", "deadLetter"] {
            let answer = api
                .get(&format!("/replication/v1/{log}?{query}"), &Api::staff())
                .await;
            answer.tmf_error(400, "InvalidQuery");
        }
    }
    // other methods are not allowed; unknown paths are 404
    api.send(Method::POST, "/replication/v1/status", &Api::staff(), None)
        .await
        .tmf_error(405, "MethodNotAllowed");
    api.get("/replication/v1/nothing", &[])
        .await
        .tmf_error(404, "NotFound");
}

#[tokio::test]
async fn last_outbox_seq_is_found_from_any_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("catalog.redb")).expect("store");
    assert_eq!(last_outbox_seq(&store, 0).await, Ok(0));
    assert_eq!(last_outbox_seq(&store, 7).await, Ok(0));
    for i in 1..=37u64 {
        let id = format!("e{i}");
        store
            .create(
                EntityVersion {
                    resource: "category".into(),
                    id: id.clone(),
                    version: 1,
                    body: json!({"id": id}),
                    last_update: "2024-05-01T10:00:00.000Z".into(),
                    deleted: false,
                    provenance: None,
                },
                ChangeKind::Create,
            )
            .await
            .expect("create");
    }
    for known in [0, 1, 2, 5, 16, 36, 37, 100] {
        assert_eq!(last_outbox_seq(&store, known).await, Ok(37), "from {known}");
    }
}

/// The HTTP registry against a tiny server answering like CometBFT's `abci_query`.
#[tokio::test]
async fn bus_member_directory_over_http() {
    use axum::extract::{Query, State};
    use axum::routing::get;

    #[derive(Clone)]
    struct Registry {
        members: Arc<HashMap<String, Value>>,
        hits: Arc<Mutex<Vec<String>>>,
    }

    async fn abci_query(
        State(registry): State<Registry>,
        Query(params): Query<HashMap<String, String>>,
    ) -> ([(&'static str, &'static str); 1], String) {
        let path = params.get("path").cloned().unwrap_or_default();
        registry
            .hits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(path.clone());
        // CometBFT takes string arguments in quotes: path="/member/<id>"
        let id = path
            .strip_prefix("\"/member/")
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or("");
        let response = match registry.members.get(id) {
            Some(record) => json!({"code": 0, "log": "", "info": "", "index": "0", "key": null,
                "value": BASE64.encode(record.to_string()), "proofOps": null,
                "height": "12", "codespace": ""}),
            None => json!({"code": 102, "log": format!("no member {id:?}"), "info": "",
                "index": "0", "key": null, "value": null, "proofOps": null,
                "height": "12", "codespace": "dome"}),
        };
        let answer = json!({"jsonrpc": "2.0", "id": -1, "result": {"response": response}});
        ([("content-type", "application/json")], answer.to_string())
    }

    let mut members = HashMap::new();
    members.insert(
        "member-b".to_string(),
        json!({"id": "member-b", "public_key": keypair(2).public_key().to_base64(),
               "base_url": "https://market-b.example", "active": true}),
    );
    members.insert(
        "member-gone".to_string(),
        json!({"id": "member-gone", "public_key": keypair(4).public_key().to_base64(),
               "base_url": "https://gone.example", "active": false}),
    );
    let registry = Registry {
        members: Arc::new(members),
        hits: Arc::new(Mutex::new(Vec::new())),
    };
    let app = Router::new()
        .route("/abci_query", get(abci_query))
        .with_state(registry.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let live = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    // An endpoint nobody listens on: bound, then closed.
    let dead = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", probe.local_addr().expect("addr"))
    };

    let directory = Arc::new(BusMemberDirectory::new(vec![dead, live]).expect("directory"));
    assert_eq!(
        directory.member(&member("member-b")).await,
        Ok(Some((keypair(2).public_key(), true)))
    );
    assert_eq!(
        directory.member(&member("member-gone")).await,
        Ok(Some((keypair(4).public_key(), false)))
    );
    assert_eq!(directory.member(&member("member-x")).await, Ok(None));
    // cached: found and unknown members alike are not asked again right away
    assert_eq!(
        directory.member(&member("member-b")).await,
        Ok(Some((keypair(2).public_key(), true)))
    );
    assert_eq!(directory.member(&member("member-x")).await, Ok(None));
    let hits = registry
        .hits
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    assert_eq!(
        hits,
        [
            "\"/member/member-b\"",
            "\"/member/member-gone\"",
            "\"/member/member-x\""
        ]
    );

    // and end to end: the API checks a signed fetch against this registry
    let api = Api::new(Some(directory));
    let created = api
        .create(
            "productOffering",
            json!({"name": "x", "@audience": ["member-b"]}),
        )
        .await;
    let path = format!(
        "{BASE}/productOffering/{}/version/1",
        created["id"].as_str().expect("id")
    );
    let answer = api
        .get(&path, &signed("member-b", 2, &path, unix_now()))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);

    // every endpoint down: unavailable, not "no such member"
    let nowhere = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", probe.local_addr().expect("addr"))
    };
    let unreachable = BusMemberDirectory::new(vec![nowhere]).expect("directory");
    assert!(matches!(
        unreachable.member(&member("member-b")).await,
        Err(DirectoryError::Unavailable(_))
    ));
    server.abort();
}
