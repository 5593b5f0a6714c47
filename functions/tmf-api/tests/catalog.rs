//! Catalogue resources through the router: create, read, versions, list with paging,
//! `fields`, sorting and filters, patch, delete.

mod common;

use axum::http::{Method, StatusCode};
use common::{Harness, BASE, PUBLIC};
use dome_catalog_store::ChangeKind;
use serde_json::{json, Value};

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn catalog_lifecycle() {
    let h = Harness::new();
    let created = h
        .post(
            "/catalog",
            json!({"name": "Main catalogue", "catalogType": "product",
                   "validFor": {"startDateTime": "2024-01-01T00:00:00Z"},
                   "x-extension": {"kept": true}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let cat = created.body.clone();
    let id = cat["id"].as_str().expect("id").to_string();
    let href = format!("{PUBLIC}{BASE}/catalog/{id}");
    assert_eq!(cat["href"], href);
    assert_eq!(created.header("location"), Some(href.as_str()));
    assert_eq!(created.header("etag"), Some("\"1\""));
    let v1_url = format!("{href}/version/1");
    assert_eq!(created.header("content-location"), Some(v1_url.as_str()));
    assert_eq!(
        created.header("content-type"),
        Some("application/json;charset=utf-8")
    );
    assert_eq!(cat["version"], "1");
    assert_eq!(cat["lifecycleStatus"], "In study");
    assert_eq!(cat["@type"], "Catalog");
    assert_eq!(cat["x-extension"], json!({"kept": true}));
    let last_update = cat["lastUpdate"].as_str().expect("lastUpdate");
    assert!(
        last_update.ends_with('Z') && last_update.len() == 24,
        "{last_update}"
    );

    let read = h.get(&format!("/catalog/{id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, cat);
    assert_eq!(read.header("content-location"), Some(v1_url.as_str()));

    // a state change and an attribute change make versions 2 and 3
    let patched = h
        .patch(
            &format!("/catalog/{id}"),
            json!({"lifecycleStatus": "Launched"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["version"], "2");
    assert_eq!(patched.header("etag"), Some("\"2\""));
    assert!(patched.body["lastUpdate"].as_str() > Some(last_update));
    let patched = h
        .patch(
            &format!("/catalog/{id}"),
            json!({"description": "all offers", "x-extension": null}),
        )
        .await;
    assert_eq!(patched.body["version"], "3");
    assert!(patched.body.get("x-extension").is_none());
    assert_eq!(patched.body["lifecycleStatus"], "Launched");

    // every version stays readable at its stable URL
    let v1 = h.get(&format!("/catalog/{id}/version/1")).await;
    assert_eq!(v1.status, StatusCode::OK);
    assert_eq!(v1.body, cat);
    let v2 = h
        .get(&format!("/catalog/{id}/version/2?fields=lifecycleStatus"))
        .await;
    assert_eq!(
        v2.body,
        json!({"id": id, "href": href, "lifecycleStatus": "Launched"})
    );
    assert_eq!(h.get(&format!("/catalog/{id}")).await.body["version"], "3");
    for missing in ["4", "0", "x", "-1", "+1"] {
        let a = h.get(&format!("/catalog/{id}/version/{missing}")).await;
        a.tmf_error(404, "NotFound");
    }

    // a patch that changes nothing writes nothing
    let before = h.outbox().await.len();
    let same = h
        .patch(
            &format!("/catalog/{id}"),
            json!({"description": "all offers"}),
        )
        .await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(same.body["version"], "3");
    assert_eq!(h.outbox().await.len(), before);

    let changes: Vec<ChangeKind> = h.outbox().await.iter().map(|e| e.change).collect();
    assert_eq!(
        changes,
        [
            ChangeKind::Create,
            ChangeKind::StateChange,
            ChangeKind::Update
        ]
    );

    // delete: 204, then 404; old versions stay readable, the tombstone is not served
    let deleted = h.delete(&format!("/catalog/{id}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(deleted.text.is_empty());
    h.get(&format!("/catalog/{id}"))
        .await
        .tmf_error(404, "NotFound");
    h.delete(&format!("/catalog/{id}"))
        .await
        .tmf_error(404, "NotFound");
    h.patch(&format!("/catalog/{id}"), json!({"name": "z"}))
        .await
        .tmf_error(404, "NotFound");
    assert_eq!(
        h.get(&format!("/catalog/{id}/version/3")).await.status,
        StatusCode::OK
    );
    h.get(&format!("/catalog/{id}/version/4"))
        .await
        .tmf_error(404, "NotFound");
    assert_eq!(h.get("/catalog").await.body, json!([]));
    assert_eq!(
        h.outbox().await.last().map(|e| e.change),
        Some(ChangeKind::Delete)
    );
}

#[tokio::test]
async fn category_tree_and_references() {
    let h = Harness::new();
    let root = h
        .create("category", json!({"name": "Connectivity", "isRoot": true}))
        .await;
    let child = h
        .create(
            "category",
            json!({"name": "Fibre", "isRoot": false, "parentId": root["id"],
                   "productOffering": [{"id": "po-1", "name": "Fibre 1G"}]}),
        )
        .await;
    let catalog = h
        .create(
            "catalog",
            json!({"name": "B2C", "category": [{"id": root["id"], "href": root["href"]}]}),
        )
        .await;
    assert_eq!(catalog["category"][0]["id"], root["id"]);
    let roots = h.get("/category?isRoot=true").await;
    assert_eq!(ids(&roots.body), [root["id"].as_str().unwrap_or_default()]);
    let children = h
        .get(&format!(
            "/category?parentId={}",
            root["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(
        ids(&children.body),
        [child["id"].as_str().unwrap_or_default()]
    );
    let by_offering = h.get("/category?productOffering.id=po-1&fields=name").await;
    assert_eq!(
        by_offering.body,
        json!([{"id": child["id"], "href": child["href"], "name": "Fibre"}])
    );
    // a category reference without id is refused with the path of the problem
    let bad = h
        .post(
            "/catalog",
            json!({"name": "x", "category": [{"name": "no id"}]}),
        )
        .await;
    let message = bad.tmf_error(400, "InvalidBody");
    assert_eq!(message, "category[0].id: required attribute is missing");
}

async fn seed_offerings(h: &Harness) -> Vec<Value> {
    let mut out = Vec::new();
    for (name, status, price) in [
        ("Fibre 100", "Launched", 30),
        ("Fibre 1000", "Launched", 60),
        ("Mobile S", "In study", 10),
        ("Mobile L", "Retired", 25),
        ("TV", "Active", 15),
    ] {
        let body = json!({"name": name, "lifecycleStatus": status, "isBundle": false,
                          "x-price": price, "category": [{"id": format!("cat-{}", &name[..2])}]});
        out.push(h.create("productOffering", body).await);
        // distinct lastUpdate values (millisecond precision)
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    out
}

#[tokio::test]
async fn pagination_headers() {
    let h = Harness::new();
    let all = seed_offerings(&h).await;

    // no limit: the whole collection fits, 200
    let whole = h.get("/productOffering").await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.header("x-total-count"), Some("5"));
    assert_eq!(whole.header("x-result-count"), Some("5"));
    // ordered by id when no sort is given
    let mut sorted: Vec<String> = all
        .iter()
        .map(|o| o["id"].as_str().unwrap_or_default().to_string())
        .collect();
    sorted.sort();
    assert_eq!(ids(&whole.body), sorted);

    let page = h.get("/productOffering?offset=1&limit=2").await;
    assert_eq!(page.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(page.header("x-total-count"), Some("5"));
    assert_eq!(page.header("x-result-count"), Some("2"));
    assert_eq!(ids(&page.body), sorted[1..3]);

    let last = h.get("/productOffering?offset=4&limit=2").await;
    assert_eq!(last.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(last.header("x-result-count"), Some("1"));

    let fits = h.get("/productOffering?limit=5").await;
    assert_eq!(fits.status, StatusCode::OK);

    let beyond = h.get("/productOffering?offset=10").await;
    assert_eq!(beyond.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(beyond.body, json!([]));
    assert_eq!(beyond.header("x-result-count"), Some("0"));

    let filtered = h
        .get("/productOffering?lifecycleStatus=Launched&limit=10")
        .await;
    assert_eq!(filtered.status, StatusCode::OK);
    assert_eq!(filtered.header("x-total-count"), Some("2"));

    let empty = h.get("/catalog").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.header("x-total-count"), Some("0"));
}

#[tokio::test]
async fn fields_sort_and_filters() {
    let h = Harness::new();
    let all = seed_offerings(&h).await;
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|i| i["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };

    let projected = h
        .get("/productOffering?fields=name&sort=name&limit=1")
        .await;
    assert_eq!(projected.body[0].as_object().map(|o| o.len()), Some(3));
    assert_eq!(projected.body[0]["name"], "Fibre 100");
    assert!(projected.body[0]["href"].as_str().is_some());

    assert_eq!(
        names(&h.get("/productOffering?sort=-x-price").await.body),
        ["Fibre 1000", "Fibre 100", "Mobile L", "TV", "Mobile S"]
    );
    assert_eq!(
        names(
            &h.get("/productOffering?sort=lifecycleStatus,-name")
                .await
                .body
        ),
        ["TV", "Mobile S", "Fibre 1000", "Fibre 100", "Mobile L"]
    );
    assert_eq!(
        names(
            &h.get("/productOffering?lifecycleStatus=Launched,Active&sort=name")
                .await
                .body
        ),
        ["Fibre 100", "Fibre 1000", "TV"]
    );
    assert_eq!(
        names(
            &h.get("/productOffering?x-price.gte=25&x-price.lt=60&sort=name")
                .await
                .body
        ),
        ["Fibre 100", "Mobile L"]
    );
    assert_eq!(
        names(
            &h.get("/productOffering?name.regex=%5EMobile&sort=name")
                .await
                .body
        ),
        ["Mobile L", "Mobile S"]
    );
    assert_eq!(
        names(
            &h.get("/productOffering?category.id=cat-Fi&sort=-name")
                .await
                .body
        ),
        ["Fibre 1000", "Fibre 100"]
    );
    // lastUpdate echoed back unencoded, as the conformance kit does
    let third = &all[2];
    let at = third["lastUpdate"].as_str().unwrap_or_default();
    let exact = h.get(&format!("/productOffering?lastUpdate={at}")).await;
    assert_eq!(ids(&exact.body), [third["id"].as_str().unwrap_or_default()]);
    let after = h
        .get(&format!(
            "/productOffering?lastUpdate.gt={at}&sort=lastUpdate"
        ))
        .await;
    assert_eq!(names(&after.body), ["Mobile L", "TV"]);
    let upto = h
        .get(&format!("/productOffering?lastUpdate.lte={at}"))
        .await;
    assert_eq!(upto.header("x-total-count"), Some("3"));
    // every listed item carries what the conformance kit requires
    for item in h
        .get("/productOffering")
        .await
        .body
        .as_array()
        .expect("array")
    {
        for key in ["href", "id", "lastUpdate", "lifecycleStatus", "name"] {
            assert!(item.get(key).is_some(), "{key} missing in {item}");
        }
    }
    // single-entity reads take fields
    let one = h
        .get(&format!(
            "/productOffering/{}?fields=lifecycleStatus,name",
            third["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(
        one.body,
        json!({"id": third["id"], "href": third["href"], "name": "Mobile S", "lifecycleStatus": "In study"})
    );
}

#[tokio::test]
async fn conditional_patch_with_if_match() {
    let h = Harness::new();
    let spec = h
        .create("productSpecification", json!({"name": "Router"}))
        .await;
    let path = format!(
        "{BASE}/productSpecification/{}",
        spec["id"].as_str().unwrap_or_default()
    );
    let auth = format!("Bearer {}", common::TOKEN);
    let patch_with = |etag: &'static str| {
        let auth = auth.clone();
        let path = path.clone();
        let h = &h;
        async move {
            h.raw(
                Method::PATCH,
                &path,
                &[
                    ("content-type", "application/merge-patch+json"),
                    ("authorization", &auth),
                    ("if-match", etag),
                ],
                br#"{"brand": "acme"}"#.to_vec(),
            )
            .await
        }
    };
    patch_with("\"7\"")
        .await
        .tmf_error(412, "PreconditionFailed");
    let ok = patch_with("\"1\"").await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.header("etag"), Some("\"2\""));
    assert_eq!(patch_with("*").await.status, StatusCode::OK);
}

#[tokio::test]
async fn product_offering_price_and_spec_follow_the_same_rules() {
    let h = Harness::new();
    let pop = h
        .create(
            "productOfferingPrice",
            json!({"name": "Monthly", "priceType": "recurring",
                   "price": {"unit": "EUR", "value": 9.99},
                   "recurringChargePeriodType": "month"}),
        )
        .await;
    assert_eq!(pop["@type"], "ProductOfferingPrice");
    let bad = h
        .patch(
            &format!(
                "/productOfferingPrice/{}",
                pop["id"].as_str().unwrap_or_default()
            ),
            json!({"price": {"value": "cheap"}}),
        )
        .await;
    assert_eq!(
        bad.tmf_error(400, "InvalidBody"),
        "price.value: must be a number, not a string"
    );
    let list = h.get("/productOfferingPrice?priceType=recurring").await;
    assert_eq!(list.header("x-total-count"), Some("1"));
    let spec = h
        .create(
            "productSpecification",
            json!({"name": "Router", "@type": "DeviceSpecification",
                   "@baseType": "ProductSpecification",
                   "@schemaLocation": "https://schemas.example/device.json",
                   "productSpecCharacteristic": [{"name": "colour", "valueType": "string"}]}),
        )
        .await;
    assert_eq!(spec["@type"], "DeviceSpecification");
    let typed = h
        .get("/productSpecification?@type=DeviceSpecification")
        .await;
    assert_eq!(typed.header("x-total-count"), Some("1"));
}

/// Lists read the store page by page and keep only what the answer needs: the answers must be
/// those of a filter, sort and page over the whole collection, across several store pages.
#[tokio::test]
async fn lists_span_several_store_pages() {
    let h = Harness::new();
    let count = 450; // more than two store pages of heads
    let mut expected = Vec::new();
    for i in 0..count {
        let status = if i % 3 == 0 { "Active" } else { "In study" };
        let body = json!({"name": format!("offer {i:03}"), "lifecycleStatus": status, "x-rank": i});
        let created = h.create("productOffering", body).await;
        if i % 3 == 0 {
            expected.push(created);
        }
    }
    let mut by_id: Vec<String> = expected
        .iter()
        .map(|o| o["id"].as_str().unwrap_or_default().to_string())
        .collect();
    by_id.sort();

    let all = h.get("/productOffering").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.header("x-total-count"), Some("450"));

    // unsorted: id order; only offset + limit items are kept while reading
    let page = h
        .get("/productOffering?lifecycleStatus=Active&offset=140&limit=20")
        .await;
    assert_eq!(page.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(page.header("x-total-count"), Some("150"));
    assert_eq!(page.header("x-result-count"), Some("10"));
    assert_eq!(ids(&page.body), by_id[140..150]);

    // sorted: every match is kept, then sorted and paged
    let sorted = h
        .get("/productOffering?lifecycleStatus=Active&sort=-x-rank&offset=1&limit=3&fields=x-rank")
        .await;
    assert_eq!(sorted.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(sorted.header("x-total-count"), Some("150"));
    let ranks: Vec<i64> = sorted
        .body
        .as_array()
        .expect("array")
        .iter()
        .map(|o| o["x-rank"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(ranks, [444, 441, 438]);
}

/// More lists at once than the router lets scan the store (one per core): the others wait
/// for a turn and every one gets the whole answer; a scan that kept its turn would hang them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lists_all_answer() {
    let h = Harness::new();
    seed_offerings(&h).await;
    let lists = (0..24).map(|_| h.get("/productOffering?lifecycleStatus=Launched"));
    let answers = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        futures_util::future::join_all(lists),
    )
    .await
    .expect("every list answers");
    for answer in answers {
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.header("x-total-count"), Some("2"));
    }
}
