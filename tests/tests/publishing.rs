//! Publishing the snapshot to Cloudflare KV through its REST API, against a local fake that
//! checks each request's exact shape (method, path, token, JSON body) and can fail on
//! purpose; on SQLite and on PostgreSQL. Also: the OpenAPI document covers every API route.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{post, put};
use humanproof_control_plane::db::projects;
use humanproof_control_plane::publish::{KvClient, PublishReport, Publisher};
use humanproof_control_plane::routes::api::OPENAPI;
use humanproof_control_plane::secrets::{new_backend_secret, new_site_key};
use humanproof_protocol::SiteSnapshot;
use humanproof_tests::*;
use serde_json::{Value, json};

const ACCOUNT: &str = "acc0123";
const NAMESPACE: &str = "ns4567";
const TOKEN: &str = "cf-test-token";

/// What the fake namespace holds and how it should misbehave.
#[derive(Default)]
struct FakeKv {
    entries: std::collections::BTreeMap<String, String>,
    /// Answer this many upcoming calls with a 500.
    fail_next: usize,
    /// Report these keys as not written on the next put, once.
    drop_keys_once: Vec<String>,
    calls: Vec<String>,
}

type Shared = Arc<Mutex<FakeKv>>;

fn envelope(unsuccessful: Vec<String>, count: usize) -> Json<Value> {
    Json(
        json!({ "success": true, "errors": [], "messages": [], "result": { "successful_key_count": count, "unsuccessful_keys": unsuccessful } }),
    )
}

fn check(
    headers: &HeaderMap,
    account: &str,
    namespace: &str,
) -> Result<(), (StatusCode, Json<Value>)> {
    let refuse = |status: StatusCode, message: &str| {
        (
            status,
            Json(json!({ "success": false, "errors": [{ "code": 10000, "message": message }] })),
        )
    };
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return Err(refuse(StatusCode::UNAUTHORIZED, "Authentication error"));
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return Err(refuse(StatusCode::BAD_REQUEST, "expected JSON"));
    }
    if (account, namespace) != (ACCOUNT, NAMESPACE) {
        return Err(refuse(StatusCode::NOT_FOUND, "namespace not found"));
    }
    Ok(())
}

async fn bulk_put(
    State(kv): State<Shared>,
    Path((account, namespace)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    check(&headers, &account, &namespace)?;
    let mut kv = kv.lock().unwrap();
    kv.calls.push("put".into());
    if kv.fail_next > 0 {
        kv.fail_next -= 1;
        return Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(
                json!({ "success": false, "errors": [{ "code": 10001, "message": "service unavailable" }] }),
            ),
        ));
    }
    // Exactly `[{"key": string, "value": string}]`, nothing else.
    let pairs = body.as_array().expect("the body is an array");
    let dropped = std::mem::take(&mut kv.drop_keys_once);
    let mut unsuccessful = Vec::new();
    for pair in pairs {
        let object = pair.as_object().unwrap();
        assert_eq!(
            object.keys().collect::<Vec<_>>(),
            ["key", "value"],
            "{pair}"
        );
        let key = pair["key"].as_str().unwrap().to_owned();
        assert!(key.starts_with("site:hp_site_"), "{key}");
        let value = pair["value"].as_str().unwrap();
        serde_json::from_str::<SiteSnapshot>(value).expect("values are snapshot entries");
        if dropped.contains(&key) {
            unsuccessful.push(key);
        } else {
            kv.entries.insert(key, value.to_owned());
        }
    }
    Ok(envelope(unsuccessful, pairs.len()))
}

async fn bulk_delete(
    State(kv): State<Shared>,
    Path((account, namespace)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    check(&headers, &account, &namespace)?;
    let mut kv = kv.lock().unwrap();
    kv.calls.push("delete".into());
    let keys: Vec<String> = serde_json::from_value(body).expect("the body is an array of keys");
    for key in &keys {
        kv.entries.remove(key);
    }
    Ok(envelope(vec![], keys.len()))
}

async fn fake_cloudflare() -> (String, Shared) {
    let kv = Shared::default();
    let router = axum::Router::new()
        .route(
            "/client/v4/accounts/{account}/storage/kv/namespaces/{namespace}/bulk",
            put(bulk_put),
        )
        .route(
            "/client/v4/accounts/{account}/storage/kv/namespaces/{namespace}/bulk/delete",
            post(bulk_delete),
        )
        .with_state(kv.clone());
    (format!("{}/client/v4", serve_app(router).await), kv)
}

fn kv_publisher(api_url: &str, token: &str) -> Publisher {
    Publisher::CloudflareKv(KvClient::new(
        humanproof_control_plane::http::client(),
        api_url,
        ACCOUNT,
        NAMESPACE,
        token,
    ))
}

on_both_databases! {
    async fn kv_publishing_is_idempotent_retried_and_loses_nothing(world: World) {
        let (api_url, kv) = fake_cloudflare().await;
        let publisher = kv_publisher(&api_url, TOKEN);
        let now = world.clock.now_ms();
        let (key_a, key_b) = (new_site_key(), new_site_key());
        let a = projects::insert(&world.db, None, &quick_project("a"), &key_a, &new_backend_secret(), now).await.unwrap();
        let b = projects::insert(&world.db, None, &quick_project("b"), &key_b, &new_backend_secret(), now).await.unwrap();

        // First publish writes both; a second has nothing left to do.
        assert_eq!(publisher.publish_pending(&world.db, &world.state().plans, now).await.unwrap(), PublishReport { written: 2, deleted: 0 });
        assert_eq!(publisher.publish_pending(&world.db, &world.state().plans, now).await.unwrap(), PublishReport::default());
        let key_a = format!("site:{key_a}");
        let stored: SiteSnapshot = serde_json::from_str(&kv.lock().unwrap().entries[&key_a]).unwrap();
        assert!(stored.active);

        // A change that fails three times stays pending, and the next run publishes it.
        let mut paused = a.settings.clone();
        paused.active = false;
        projects::update_settings(&world.db, &a.id, &paused, now).await.unwrap();
        kv.lock().unwrap().fail_next = 3;
        assert!(publisher.publish_pending(&world.db, &world.state().plans, now).await.is_err());
        assert_eq!(projects::unpublished(&world.db).await.unwrap().len(), 1);
        // One transient failure is retried within the same publish.
        kv.lock().unwrap().fail_next = 1;
        assert_eq!(publisher.publish_pending(&world.db, &world.state().plans, now).await.unwrap().written, 1);
        let stored: SiteSnapshot = serde_json::from_str(&kv.lock().unwrap().entries[&key_a]).unwrap();
        assert!(!stored.active);

        // Keys Cloudflare reports as unwritten are sent again.
        projects::update_settings(&world.db, &a.id, &a.settings, now).await.unwrap();
        kv.lock().unwrap().drop_keys_once = vec![key_a.clone()];
        publisher.publish_pending(&world.db, &world.state().plans, now).await.unwrap();
        let calls = kv.lock().unwrap().calls.clone();
        assert_eq!(calls[calls.len() - 2..], ["put", "put"]);
        let stored: SiteSnapshot = serde_json::from_str(&kv.lock().unwrap().entries[&key_a]).unwrap();
        assert!(stored.active);

        // Deleting removes the key; the deletion waits until Cloudflare confirms it.
        projects::delete(&world.db, &b, now).await.unwrap();
        let wrong_token = kv_publisher(&api_url, "wrong-token");
        assert!(wrong_token.publish_pending(&world.db, &world.state().plans, now).await.is_err());
        assert_eq!(projects::pending_deletions(&world.db).await.unwrap(), std::slice::from_ref(&b.site_key));
        assert_eq!(publisher.publish_pending(&world.db, &world.state().plans, now).await.unwrap().deleted, 1);
        assert!(!kv.lock().unwrap().entries.contains_key(&format!("site:{}", b.site_key)));

        // The operator's full republish writes everything again, harmlessly.
        assert_eq!(publisher.republish_all(&world.db, &world.state().plans, now).await.unwrap(), PublishReport { written: 1, deleted: 0 });
        assert_eq!(kv.lock().unwrap().entries.len(), 1);
    }
}

#[test]
fn the_openapi_document_describes_every_api_route() {
    let document: Value = serde_json::from_str(OPENAPI).unwrap();
    let paths = document["paths"].as_object().unwrap();
    let documented: Vec<String> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "parameters")
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    let routed = [
        "GET /projects",
        "POST /projects",
        "GET /projects/{id}",
        "PATCH /projects/{id}",
        "DELETE /projects/{id}",
        "POST /projects/{id}/rotate-secret",
        "POST /projects/{id}/revoke-tokens",
        "GET /projects/{id}/usage",
        "GET /projects/{id}/stats",
        "GET /billing",
    ];
    let mut documented_sorted = documented.clone();
    documented_sorted.sort();
    let mut routed_sorted: Vec<String> = routed.iter().map(|r| (*r).to_owned()).collect();
    routed_sorted.sort();
    assert_eq!(documented_sorted, routed_sorted);
    let app_source = include_str!("../../control-plane/src/router.rs");
    for path in paths.keys() {
        assert!(
            app_source.contains(&format!("\"/api/v1{path}\"")),
            "{path} is documented but not routed"
        );
    }
}
