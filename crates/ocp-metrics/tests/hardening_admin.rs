//! Hardening of the operator surface, against the real binary: the admin token's length and
//! where it may come from, failed authentications per source address (admin API, /metrics,
//! /oauth2/token), `/metrics` behind a credential, the page's security headers, and the data
//! directory's permissions.

mod support;

use ocp_metrics_auth::{AUTH_FAILURE_REFILL_MS, AUTH_FAILURES_BURST};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

/// Attempts with wrong credentials in the guessing tests: the measured attack.
const GUESSES: usize = 300;
/// Marks every wrong credential, so that the log can be searched for it.
const WRONG_MARK: &str = "WRONGSECRETMARK";

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_short_admin_token_is_refused_at_start_and_the_flag_is_gone() {
    let short = serve_until_exit(
        &[],
        &[("OCP_METRICS_ADMIN_TOKEN", "a")],
        Duration::from_secs(10),
    );
    assert_eq!(short.code, Some(1), "{short:?}");
    assert!(
        short
            .stderr
            .contains("OCP_METRICS_ADMIN_TOKEN is 1 characters long; it must have at least 32"),
        "{}",
        short.stderr
    );
    let thirty_one = "x".repeat(31);
    let exit = serve_until_exit(
        &[],
        &[("OCP_METRICS_ADMIN_TOKEN", &thirty_one)],
        Duration::from_secs(10),
    );
    assert_eq!(exit.code, Some(1), "{exit:?}");
    // The token on the command line is visible to every local user: the flag no longer exists.
    let flag = serve_until_exit(
        &["--admin-token", ADMIN_TOKEN],
        &[],
        Duration::from_secs(10),
    );
    assert_eq!(flag.code, Some(2), "{flag:?}");
    assert!(
        flag.stderr.contains("unexpected argument '--admin-token'"),
        "{}",
        flag.stderr
    );
    // The same short token from a file is refused too, naming the file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-token");
    std::fs::write(&file, "short\n").unwrap();
    let from_file = serve_until_exit(
        &["--admin-token-file", file.to_str().unwrap()],
        &[],
        Duration::from_secs(10),
    );
    assert_eq!(from_file.code, Some(1), "{from_file:?}");
    assert!(
        from_file
            .stderr
            .contains("admin-token is 5 characters long"),
        "{}",
        from_file.stderr
    );
}

#[test]
fn the_admin_token_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-token");
    std::fs::write(&file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let server = TestServer::start_with(Options {
        args: vec!["--admin-token-file".into(), file.to_str().unwrap().into()],
        admin: false,
    });
    let auth = bearer(ADMIN_TOKEN);
    let r = server.request(
        "GET",
        "/admin/v1/clients",
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Sends `GUESSES` requests made by `guess(i)` and checks the allowance: the first
/// `AUTH_FAILURES_BURST` are answered `unauthorized`, the rest 429 with Retry-After except at
/// most one more `unauthorized` per refill period that has passed (checked after every
/// request). `right()` is sent every 50 guesses and must always succeed.
fn assert_guessing_is_slowed(
    server: &TestServer,
    unauthorized: u16,
    guess: impl Fn(usize) -> Resp,
    right: impl Fn() -> Resp,
) {
    let burst = AUTH_FAILURES_BURST as usize;
    let started = Instant::now();
    let mut unauthorized_count = 0;
    let mut refused_count = 0;
    for i in 0..GUESSES {
        let r = guess(i);
        if r.status == 429 {
            let retry: u64 = r
                .header("retry-after")
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("429 without a numeric Retry-After: {:?}", r.headers));
            assert!(
                (1..=AUTH_FAILURE_REFILL_MS.div_ceil(1000)).contains(&retry),
                "Retry-After {retry}"
            );
            assert_error(&r, 429);
            refused_count += 1;
        } else {
            assert_eq!(r.status, unauthorized, "guess {i}: {}", r.text);
            unauthorized_count += 1;
        }
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let allowed = burst + (elapsed_ms / AUTH_FAILURE_REFILL_MS) as usize;
        assert!(
            unauthorized_count <= allowed,
            "{unauthorized_count} of {} guesses answered {unauthorized} within {elapsed_ms} ms; at most {allowed}",
            i + 1
        );
        if i < burst {
            assert_eq!(r.status, unauthorized, "guess {i} is within the burst");
        }
        if i % 50 == 49 {
            let ok = right();
            assert_eq!(
                ok.status, 200,
                "right credentials after {i} guesses: {}",
                ok.text
            );
        }
    }
    assert!(refused_count > 0, "no guess was answered 429");
    let ok = right();
    assert_eq!(ok.status, 200, "right credentials at the end: {}", ok.text);
    let log = server.log_text();
    assert!(log.contains("failed authentication"), "{log}");
    assert!(
        log.contains("too many failed authentications from this address"),
        "{log}"
    );
    assert!(
        !log.contains(WRONG_MARK),
        "a presented credential reached the log"
    );
}

#[test]
fn wrong_admin_tokens_are_answered_429_while_the_right_one_still_works() {
    let server = TestServer::start();
    let right = bearer(ADMIN_TOKEN);
    assert_guessing_is_slowed(
        &server,
        401,
        |i| {
            let wrong = bearer(&format!("{WRONG_MARK}-{i:040}"));
            server.request(
                "GET",
                "/admin/v1/clients",
                &[("Authorization", &wrong)],
                None,
            )
        },
        || {
            server.request(
                "GET",
                "/admin/v1/clients",
                &[("Authorization", &right)],
                None,
            )
        },
    );
    // /metrics shares the allowance: the same address is still refused there.
    let r = server.request("GET", "/metrics", &[("Authorization", "Bearer nope")], None);
    assert_eq!(r.status, 429, "{}", r.text);
}

#[test]
fn wrong_client_secrets_are_answered_429_while_the_right_one_still_works() {
    let server = TestServer::start();
    let (id, secret) = server.create_client(&["acme"], &["metrics:read"]);
    let grant = [("grant_type", "client_credentials")];
    assert_guessing_is_slowed(
        &server,
        401,
        |i| server.oauth_token(Some((&id, &format!("{WRONG_MARK}{i}"))), &grant),
        || server.oauth_token(Some((&id, &secret)), &grant),
    );
}

#[test]
fn metrics_need_a_credential() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics-token");
    let metrics_token = "scrape-0123456789abcdef0123456789abcdef";
    std::fs::write(&file, metrics_token).unwrap();
    let server = TestServer::start_with(Options::args(&[
        "--metrics-token-file",
        file.to_str().unwrap(),
    ]));
    server.wait_ready();
    let none = server.request("GET", "/metrics", &[], None);
    let message = assert_error(&none, 401);
    assert!(message.contains("OCP_METRICS_METRICS_TOKEN"), "{message}");
    assert!(!none.text.contains("ocp_metrics_"), "{}", none.text);
    let wrong = server.request("GET", "/metrics", &[("Authorization", "Bearer x")], None);
    assert_error(&wrong, 401);
    for token in [metrics_token, ADMIN_TOKEN] {
        let auth = bearer(token);
        let r = server.request("GET", "/metrics", &[("Authorization", &auth)], None);
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.text.contains("\nocp_metrics_ready 1\n"), "{}", r.text);
        // The two failed scrapes above are counted; none was refused yet.
        assert!(
            r.text.contains("\nocp_metrics_auth_failures_total 2\n"),
            "{}",
            r.text
        );
        assert!(
            r.text
                .contains("\nocp_metrics_auth_failures_refused_total 0\n"),
            "{}",
            r.text
        );
    }
    // The scrape token opens /metrics only.
    let scrape = bearer(metrics_token);
    let admin = server.request(
        "GET",
        "/admin/v1/clients",
        &[("Authorization", &scrape)],
        None,
    );
    assert_error(&admin, 401);

    // With no token configured at all, there is nothing to scrape with: 404.
    let bare = TestServer::start_with(Options::no_admin());
    let r = bare.request("GET", "/metrics", &[], None);
    let message = assert_error(&r, 404);
    assert!(message.contains("OCP_METRICS_METRICS_TOKEN"), "{message}");
}

#[test]
fn the_page_and_its_assets_carry_security_headers() {
    let server = TestServer::start();
    for path in [
        "/",
        "/assets/main.js",
        "/assets/csv.js",
        "/assets/app.css",
        "/assets/vendor/uPlot.iife.min.js",
    ] {
        let r = server.request("GET", path, &[], None);
        assert_eq!(r.status, 200, "{path}");
        let csp = r
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no Content-Security-Policy"));
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
    }
    // The policy allows no inline script or style, so the page must have none.
    let page = server.request("GET", "/", &[], None).text;
    let scripts: Vec<&str> = page.split("<script").skip(1).collect();
    assert!(!scripts.is_empty());
    for s in scripts {
        assert!(
            s.starts_with(" src=\"/assets/"),
            "inline script: <script{s}"
        );
    }
    for inline in ["<style", " style=", " onclick=", " onload=", "javascript:"] {
        assert!(!page.contains(inline), "the page has {inline}");
    }
    // The page takes the token from the URL fragment and then removes it from the address bar.
    let state = server.request("GET", "/assets/state.js", &[], None).text;
    assert!(state.contains("history.replaceState("), "state.js");
}

/// The page's script is `main.js` and the ES modules it imports. A browser refuses a module
/// that is missing or not served as JavaScript (`nosniff`), so every module reachable from
/// `main.js` must be in the asset table with the JavaScript content type.
#[test]
fn every_module_of_the_page_is_served_as_javascript() {
    let server = TestServer::start();
    let page = server.request("GET", "/", &[], None).text;
    assert!(page.contains("<script src=\"/assets/main.js\" type=\"module\">"));
    let mut todo = vec!["main.js".to_string()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let r = server.request("GET", &format!("/assets/{name}"), &[], None);
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(
            r.header("content-type"),
            Some("text/javascript; charset=utf-8"),
            "{name}"
        );
        for import in r.text.split(" from './").skip(1) {
            let file = import.split('\'').next().unwrap_or_default();
            todo.push(file.to_string());
        }
    }
    // main.js and the twelve modules it reaches (api, cards, catalog, config, csv, dom, format,
    // live, plot, request, shape, state): a split that loses one fails here.
    assert_eq!(seen.len(), 13, "{seen:?}");
}

#[test]
fn the_data_dir_is_private_to_the_server_user() {
    let mut server = TestServer::start();
    let token = server.acme_token();
    server.ingest_ok(
        &token,
        &[
            ev("session_start", "p1", "11:00"),
            session_end("p2", "11:00", "11:05"),
        ],
    );
    // A graceful stop writes a checkpoint.
    server.stop_gracefully();
    let data = server.data_dir().to_path_buf();
    let files = files_under(&data);
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(&data).unwrap().display().to_string())
        .collect();
    for wanted in [
        "wal/",
        "checkpoints/",
        "auth-registry.json",
        "auth-jwt-hs256.key",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(wanted)),
            "no {wanted} in {names:?}"
        );
    }
    assert_eq!(mode(&data), 0o700, "data dir");
    for d in dirs_under(&data) {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }

    // A data dir left with wider modes (an older version, a copy) is tightened at start.
    let wal_file = files
        .iter()
        .find(|f| f.starts_with(data.join("wal")))
        .unwrap()
        .clone();
    let widen = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    widen(&data, 0o755);
    widen(&data.join("wal"), 0o755);
    widen(&wal_file, 0o644);
    server.restart();
    server.wait_ready();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("wal")), 0o700);
    assert_eq!(mode(&wal_file), 0o600);
    let log = server.log_text();
    assert!(log.contains("tightened permissions"), "{log}");
}
