//! Authentication and tenancy against the real binary (docs/api.md sections 2 and 9): bearer
//! tokens, scopes, groups, OAuth 2.0 client credentials, personal access tokens, the admin API,
//! the registry on disk, and rate limiting.

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::*;

fn acme_events(ids: &[&str]) -> String {
    ndjson(
        &ids.iter()
            .map(|id| miniapp_end(id, "10:00", "10:01", "Menu"))
            .collect::<Vec<_>>(),
    )
}

fn rt_query() -> Value {
    q(&["miniapps_invocations"], "10:00", "10:10", "five_min")
}

/// The query body that suits `path` for group `group`.
fn query_for(path: &str, metric: &str, group: &str) -> Value {
    let mut b = if is_realtime(path) {
        q(&[metric], "10:00", "11:00", "five_min")
    } else {
        q(&[metric], "10:00", "12:00", "hour")
    };
    b["group"] = json!(group);
    b
}

/// Status and message of an ingest and of a query made with `authorization` (a raw header).
fn with_authorization(server: &TestServer, authorization: Option<&str>) -> (Resp, Resp) {
    let mut headers = vec![("Content-Type", NDJSON)];
    if let Some(a) = authorization {
        headers.push(("Authorization", a));
    }
    let ingest = server.request(
        "POST",
        "/ingest/v1/events",
        &headers,
        Some(acme_events(&["e1"]).as_bytes()),
    );
    headers[0] = ("Content-Type", JSON);
    let query = server.request(
        "POST",
        RT_MINIAPPS_V3,
        &headers,
        Some(rt_query().to_string().as_bytes()),
    );
    (ingest, query)
}

#[test]
fn missing_malformed_or_unknown_bearer_is_401() {
    let server = TestServer::start();
    let real = server.acme_token();
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("empty bearer", Some("Bearer ".into())),
        (
            "other scheme",
            Some(format!("Basic {}", base64(b"acme:secret"))),
        ),
        ("token without scheme", Some(real.clone())),
        ("garbage", Some("Bearer not-a-token".into())),
        (
            "forged JWT",
            Some("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.".into()),
        ),
        (
            "unknown PAT",
            Some(format!(
                "Bearer {}{}",
                &real[..real.len() - 1],
                if real.ends_with('x') { 'y' } else { 'x' }
            )),
        ),
        (
            "admin token as a bearer",
            Some(format!("Bearer {ADMIN_TOKEN}")),
        ),
    ];
    for (name, header) in &cases {
        let (ingest, query) = with_authorization(&server, header.as_deref());
        assert_error(&ingest, 401);
        assert_error(&query, 401);
        assert!(
            ingest.header("www-authenticate").is_some(),
            "{name}: 401 without WWW-Authenticate"
        );
    }
    // Nothing was ingested by any of them.
    let a = server.query_ok(&real, RT_MINIAPPS_V3, rt_query());
    assert_eq!(a.total("miniapps_invocations"), 0);
}

#[test]
fn token_without_the_scope_is_403() {
    let server = TestServer::start();
    let read_only = server.create_token(&["acme"], &["metrics:read"]);
    let write_only = server.create_token(&["acme"], &["events:write"]);
    let (status, body) = server.ingest(&read_only, &acme_events(&["r1"]));
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let r = server.post_json(RT_MINIAPPS_V3, Some(&write_only), &rt_query());
    assert_error(&r, 403);
    // Each works for its own scope.
    let (status, body) = server.ingest(&write_only, &acme_events(&["w1"]));
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    let a = server.query_ok(&read_only, RT_MINIAPPS_V3, rt_query());
    assert_eq!(a.total("miniapps_invocations"), 1);
}

#[test]
fn cross_tenant_is_403_on_every_endpoint_and_on_ingest() {
    let server = TestServer::start();
    let acme = server.acme_token();
    let globex = server.create_token(&["globex"], &["metrics:read", "events:write"]);
    let both = server.create_token(&["acme", "globex"], &["metrics:read", "events:write"]);
    let (status, _) = server.ingest(
        &globex,
        &ndjson(&[with(
            miniapp_end("g1", "10:00", "10:01", "Menu"),
            json!({"group": "globex"}),
        )]),
    );
    assert_eq!(status, 200);

    for (path, metrics) in ENDPOINTS {
        let r = server.post_json(path, Some(&acme), &query_for(path, metrics[0], "globex"));
        assert_error(&r, 403);
        assert!(
            !r.text.contains("\"dps\""),
            "{path}: a 403 leaks data: {}",
            r.text
        );
        let r = server.post_json(path, Some(&both), &query_for(path, metrics[0], "globex"));
        assert_eq!(r.status, 200, "{path}: {}", r.text);
    }

    // One globex event among acme events: 403 and nothing of the request is accepted.
    let mut events: Vec<Value> = (0..5)
        .map(|i| miniapp_end(&format!("a{i}"), "10:00", "10:01", "Menu"))
        .collect();
    events.insert(
        3,
        with(
            miniapp_end("intruder", "10:00", "10:01", "Menu"),
            json!({"group": "globex"}),
        ),
    );
    let (status, body) = server.ingest(&acme, &ndjson(&events));
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let count = |tok: &str, group: &str| {
        let mut b = rt_query();
        b["group"] = json!(group);
        server
            .query_ok(tok, RT_MINIAPPS_V3, b)
            .total("miniapps_invocations")
    };
    assert_eq!(
        count(&acme, "acme"),
        0,
        "no acme event of the refused request counts"
    );
    assert_eq!(
        count(&globex, "globex"),
        1,
        "the globex event did not count either"
    );
    // The same acme events alone are all new, not duplicates of a half-applied request.
    events.remove(3);
    let (status, body) = server.ingest(&acme, &ndjson(&events));
    assert_eq!(
        (
            status,
            body["accepted"].as_u64(),
            body["duplicates"].as_u64()
        ),
        (200, Some(5), Some(0)),
        "{body}"
    );
}

#[test]
fn oauth_client_credentials() {
    let server = TestServer::start();
    let (id, secret) = server.create_client(&["acme"], &["metrics:read", "events:write"]);
    let grant = [("grant_type", "client_credentials")];

    // HTTP Basic.
    let r = server.oauth_token(Some((&id, &secret)), &grant);
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer", "{v}");
    assert!(v["expires_in"].as_u64().is_some_and(|s| s > 0), "{v}");
    let mut scopes: Vec<&str> = v["scope"].as_str().unwrap().split(' ').collect();
    scopes.sort();
    assert_eq!(scopes, ["events:write", "metrics:read"]);
    let basic_token = v["access_token"].as_str().unwrap().to_string();
    let (status, body) = server.ingest(&basic_token, &acme_events(&["o1"]));
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(1)),
        "{body}"
    );

    // Form fields.
    let r = server.oauth_token(
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let form_token = r.json()["access_token"].as_str().unwrap().to_string();
    let a = server.query_ok(&form_token, RT_MINIAPPS_V3, rt_query());
    assert_eq!(a.total("miniapps_invocations"), 1);

    // Wrong secret with Basic: 401 invalid_client; with form fields: invalid_client too.
    let r = server.oauth_token(Some((&id, "wrong-secret")), &grant);
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.json()["error"], "invalid_client", "{}", r.text);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|h| h.to_ascii_lowercase().starts_with("basic")),
        "{:?}",
        r.headers
    );
    let r = server.oauth_token(
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", "nope"),
        ],
    );
    // Credentials in the form, not in an Authorization header: RFC 6749 section 5.2 reserves
    // 401 (with WWW-Authenticate) for the header, so this is a 400.
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.header("www-authenticate"), None, "{:?}", r.headers);
    assert_eq!(r.json()["error"], "invalid_client", "{}", r.text);
    let r = server.oauth_token(Some(("no-such-client", &secret)), &grant);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, json!("invalid_client")),
        "{}",
        r.text
    );

    // Unsupported grant type.
    let r = server.oauth_token(Some((&id, &secret)), &[("grant_type", "password")]);
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json()["error"], "unsupported_grant_type", "{}", r.text);

    // Scope narrowing: a read-only access token cannot ingest.
    let r = server.oauth_token(
        Some((&id, &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "metrics:read"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["scope"], "metrics:read", "{v}");
    let narrow = v["access_token"].as_str().unwrap().to_string();
    let (status, _) = server.ingest(&narrow, &acme_events(&["o2"]));
    assert_eq!(status, 403);
    assert_eq!(
        server
            .query_ok(&narrow, RT_MINIAPPS_V3, rt_query())
            .total("miniapps_invocations"),
        1
    );
    // A scope the client does not have is refused.
    let (rid, rsecret) = server.create_client(&["acme"], &["metrics:read"]);
    let r = server.oauth_token(
        Some((&rid, &rsecret)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "events:write"),
        ],
    );
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("invalid_scope")),
        "{}",
        r.text
    );

    // Deleting the client revokes its access tokens at once.
    let r = server.request(
        "DELETE",
        &format!("/admin/v1/clients/{id}"),
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        None,
    );
    // Exactly 204: the CLI reports success only on it.
    assert_eq!(r.status, 204, "{}", r.text);
    assert_error(
        &server.post_json(RT_MINIAPPS_V3, Some(&basic_token), &rt_query()),
        401,
    );
    assert_error(
        &server.post_json(RT_MINIAPPS_V3, Some(&form_token), &rt_query()),
        401,
    );
    let (status, _) = server.ingest(&basic_token, &acme_events(&["o3"]));
    assert_eq!(status, 401);
    let r = server.oauth_token(Some((&id, &secret)), &grant);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, json!("invalid_client")),
        "{}",
        r.text
    );
}

#[test]
fn personal_access_token_revoke_and_expiry() {
    let server = TestServer::start();
    let v = server.create_token_full(&["acme"], &["metrics:read", "events:write"], None);
    let (id, token) = (
        v["id"].as_str().unwrap().to_string(),
        v["token"].as_str().unwrap().to_string(),
    );
    assert_eq!(
        server
            .post_json(RT_MINIAPPS_V3, Some(&token), &rt_query())
            .status,
        200
    );
    let reader = server.create_token(&["acme"], &["metrics:read"]);
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let r = server.request(
        "DELETE",
        &format!("/admin/v1/tokens/{id}"),
        &[("Authorization", &admin)],
        None,
    );
    assert_eq!(r.status, 204, "{}", r.text);
    assert_error(
        &server.post_json(RT_MINIAPPS_V3, Some(&token), &rt_query()),
        401,
    );
    let (status, _) = server.ingest(&token, &acme_events(&["p1"]));
    assert_eq!(status, 401);
    let r = server.request(
        "DELETE",
        &format!("/admin/v1/tokens/{id}"),
        &[("Authorization", &admin)],
        None,
    );
    assert_error(&r, 404);

    // Expires 2 s after the server clock: works now, 401 after 3 s.
    let expires_at = TestServer::rfc3339(server.server_now(&reader) + Duration::from_secs(2));
    let v = server.create_token_full(&["acme"], &["metrics:read"], Some(&expires_at));
    let short = v["token"].as_str().unwrap().to_string();
    assert_eq!(
        server
            .post_json(RT_MINIAPPS_V3, Some(&short), &rt_query())
            .status,
        200,
        "expires_at {expires_at}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_error(
        &server.post_json(RT_MINIAPPS_V3, Some(&short), &rt_query()),
        401,
    );
}

#[test]
fn admin_api_needs_the_admin_token() {
    let server = TestServer::start();
    let body = json!({"name": "x", "groups": ["acme"], "scopes": ["metrics:read"]});
    for (method, path) in [
        ("POST", "/admin/v1/tokens"),
        ("POST", "/admin/v1/clients"),
        ("DELETE", "/admin/v1/tokens/abc"),
    ] {
        for auth in [
            None,
            Some("Bearer wrong-admin"),
            Some("Bearer test-admin-but-longer"),
        ] {
            let mut headers = vec![("Content-Type", JSON)];
            if let Some(a) = auth {
                headers.push(("Authorization", a));
            }
            let r = server.request(method, path, &headers, Some(body.to_string().as_bytes()));
            assert_error(&r, 401);
        }
    }
    // A PAT is not an admin token.
    let pat = server.acme_token();
    let r = server.post_json("/admin/v1/tokens", Some(&pat), &body);
    assert_error(&r, 401);

    // Without OCP_METRICS_ADMIN_TOKEN the admin API does not exist.
    let bare = TestServer::start_with(Options::no_admin());
    for (method, path) in [
        ("POST", "/admin/v1/tokens"),
        ("POST", "/admin/v1/clients"),
        ("DELETE", "/admin/v1/tokens/abc"),
    ] {
        for auth in [None, Some("Bearer test-admin"), Some("Bearer ")] {
            let mut headers = vec![("Content-Type", JSON)];
            if let Some(a) = auth {
                headers.push(("Authorization", a));
            }
            let r = bare.request(method, path, &headers, Some(body.to_string().as_bytes()));
            assert_error(&r, 404);
        }
    }
}

#[test]
fn registry_survives_restart_and_holds_no_secret_in_clear() {
    let mut server = TestServer::start();
    let pat = server.acme_token();
    let (id, secret) = server.create_client(&["acme"], &["metrics:read", "events:write"]);
    let r = server.oauth_token(
        Some((&id, &secret)),
        &[("grant_type", "client_credentials")],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let access = r.json()["access_token"].as_str().unwrap().to_string();
    let (status, _) = server.ingest(&pat, &acme_events(&["k1"]));
    assert_eq!(status, 200);
    // A revoked token and a deleted client stay revoked across restarts.
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let revoked = server.create_token_full(&["acme"], &["metrics:read"], None);
    let r = server.request(
        "DELETE",
        &format!("/admin/v1/tokens/{}", revoked["id"].as_str().unwrap()),
        &[("Authorization", &admin)],
        None,
    );
    assert_eq!(r.status, 204, "{}", r.text);
    let (gone_id, gone_secret) = server.create_client(&["acme"], &["metrics:read"]);
    let r = server.oauth_token(
        Some((&gone_id, &gone_secret)),
        &[("grant_type", "client_credentials")],
    );
    let gone_access = r.json()["access_token"].as_str().unwrap().to_string();
    let r = server.request(
        "DELETE",
        &format!("/admin/v1/clients/{gone_id}"),
        &[("Authorization", &admin)],
        None,
    );
    assert_eq!(r.status, 204, "{}", r.text);
    // Created right before kill -9: must still be there (the 201 was the acknowledgement).
    let last_pat = server.acme_token();

    for restart in ["kill -9", "SIGTERM"] {
        if restart == "kill -9" {
            server.kill9();
        } else {
            server.stop_gracefully();
        }
        server.restart();
        assert_eq!(
            server
                .post_json(RT_MINIAPPS_V3, Some(&pat), &rt_query())
                .status,
            200,
            "PAT after {restart}"
        );
        assert_eq!(
            server
                .post_json(RT_MINIAPPS_V3, Some(&access), &rt_query())
                .status,
            200,
            "access token after {restart}"
        );
        let r = server.oauth_token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        );
        assert_eq!(r.status, 200, "client after {restart}: {}", r.text);
        assert_eq!(
            server
                .post_json(RT_MINIAPPS_V3, Some(&last_pat), &rt_query())
                .status,
            200,
            "last PAT after {restart}"
        );
        assert_error(
            &server.post_json(
                RT_MINIAPPS_V3,
                Some(revoked["token"].as_str().unwrap()),
                &rt_query(),
            ),
            401,
        );
        assert_error(
            &server.post_json(RT_MINIAPPS_V3, Some(&gone_access), &rt_query()),
            401,
        );
        let r = server.oauth_token(
            Some((&gone_id, &gone_secret)),
            &[("grant_type", "client_credentials")],
        );
        assert_eq!(r.status, 401, "deleted client after {restart}: {}", r.text);
    }

    // No secret appears in clear anywhere in the data dir.
    let pat_secret = &pat[pat.len() - 20..];
    let client_secret_tail = &secret[secret.len().saturating_sub(20)..];
    let files = files_under(server.data_dir());
    assert!(!files.is_empty());
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for (what, needle) in [
            ("PAT", pat.as_str()),
            ("PAT secret", pat_secret),
            ("client secret", secret.as_str()),
            ("client secret tail", client_secret_tail),
            ("admin token", ADMIN_TOKEN),
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{what} appears in clear in {}",
                f.display()
            );
        }
    }
}

#[test]
fn rate_limit_429_with_retry_after() {
    let server = TestServer::start_with(Options::args(&[
        "--rate-per-second",
        "1",
        "--rate-burst",
        "3",
    ]));
    let token = server.acme_token();
    let statuses: Vec<Resp> = (0..4)
        .map(|_| server.post_json(RT_MINIAPPS_V3, Some(&token), &rt_query()))
        .collect();
    for r in &statuses[..3] {
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = &statuses[3];
    assert_error(r, 429);
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // Another token has its own bucket.
    let other = server.acme_token();
    assert_eq!(
        server
            .post_json(RT_MINIAPPS_V3, Some(&other), &rt_query())
            .status,
        200
    );
    // After waiting, the first token works again.
    std::thread::sleep(Duration::from_secs(retry));
    assert_eq!(
        server
            .post_json(RT_MINIAPPS_V3, Some(&token), &rt_query())
            .status,
        200
    );
}

/// An access token stops working when its `expires_in` has passed.
#[test]
fn access_token_expires() {
    let server = TestServer::start_with(Options::args(&["--access-token-ttl-seconds", "1"]));
    let (id, secret) = server.create_client(&["acme"], &["metrics:read"]);
    let r = server.oauth_token(
        Some((&id, &secret)),
        &[("grant_type", "client_credentials")],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["expires_in"], 1, "{v}");
    let token = v["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        server
            .post_json(RT_MINIAPPS_V3, Some(&token), &rt_query())
            .status,
        200
    );
    std::thread::sleep(Duration::from_millis(2100));
    assert_error(
        &server.post_json(RT_MINIAPPS_V3, Some(&token), &rt_query()),
        401,
    );
}
