//! The cluster's credentials: registries of several "nodes" on one credentials bucket, against
//! real nats-server processes. A change made through one registry must be seen by the others
//! within the contract's second.

mod support;

use ocp_metrics_auth::{AuthConfig, AuthError, ClientName, GroupGrant, Reason, Registry, ScopeSet};
use ocp_metrics_cluster::open_cluster_registry;
use ocp_metrics_cluster::testing::NatsCluster;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::connect_to;

/// The contract's bound for a credential change to reach every node.
const PROPAGATION_MS_MAX: u64 = 1_000;
/// How often a condition is polled while waiting for a change to arrive.
const POLL_MS: u64 = 5;

async fn open(url: String, replicas: usize) -> Arc<Registry> {
    open_cluster_registry(
        connect_to(vec![url]).await,
        replicas,
        AuthConfig::default(),
        Arc::new(ocp_metrics_core::SystemClock),
    )
    .await
    .unwrap()
}

fn name(s: &str) -> ClientName {
    ClientName::parse(s).unwrap()
}
fn all_groups() -> GroupGrant {
    GroupGrant::parse(&["*"]).unwrap()
}
fn both_scopes() -> ScopeSet {
    ScopeSet::parse(&["metrics:read", "events:write"]).unwrap()
}

/// Polls `ok` until it holds, failing the test if it does not within [`PROPAGATION_MS_MAX`].
/// Returns how long it took.
async fn within_a_second(what: &str, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    let deadline = start + Duration::from_millis(PROPAGATION_MS_MAX);
    loop {
        if ok() {
            return start.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen within {PROPAGATION_MS_MAX} ms"
        );
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

fn refused(r: Result<ocp_metrics_auth::Grants, AuthError>) -> Option<Reason> {
    match r {
        Err(AuthError::Unauthenticated(reason)) => Some(reason),
        _ => None,
    }
}

/// A client and a personal access token created on A work on B within a second, and tokens
/// signed by either node are accepted by the other (one shared signing key).
async fn creations_reach_the_other_node(a: &Registry, b: &Registry) {
    let (client, secret) = a
        .create_client(name("ingest"), all_groups(), both_scopes())
        .await
        .unwrap();
    // Before the change arrives B refuses the client: the check below can fail.
    within_a_second("a client created on A issues tokens on B", || {
        b.issue_access_token(&client.id, &secret, None).is_ok()
    })
    .await;
    let on_b = b.issue_access_token(&client.id, &secret, None).unwrap();
    let on_a = a.issue_access_token(&client.id, &secret, None).unwrap();
    assert_eq!(
        a.authenticate(&on_b.access_token).unwrap().subject,
        client.id
    );
    assert_eq!(
        b.authenticate(&on_a.access_token).unwrap().subject,
        client.id
    );

    let (pat, token) = a
        .create_token(name("pat"), all_groups(), both_scopes(), None)
        .await
        .unwrap();
    within_a_second("a token created on A authenticates on B", || {
        b.authenticate(&token).is_ok()
    })
    .await;
    assert_eq!(b.authenticate(&token).unwrap().subject, pat.id);
    assert_eq!(b.list_clients(), a.list_clients());
    assert_eq!(b.list_tokens(), a.list_tokens());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_or_token_created_on_one_node_works_on_another_within_a_second() {
    let cluster = NatsCluster::start(1).await;
    let a = open(cluster.url(0), 1).await;
    let b = open(cluster.url(0), 1).await;
    creations_reach_the_other_node(&a, &b).await;
    // And the other way round.
    creations_reach_the_other_node(&b, &a).await;
}

/// Revoking a token or deleting a client on A: what B refuses within a second, with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_and_deletions_take_effect_on_another_node_within_a_second() {
    #[derive(Debug, Clone, Copy)]
    enum Removal {
        RevokeToken,
        DeleteClient,
    }
    let cluster = NatsCluster::start(1).await;
    let a = open(cluster.url(0), 1).await;
    let b = open(cluster.url(0), 1).await;
    for removal in [Removal::RevokeToken, Removal::DeleteClient] {
        // A bearer accepted on B, and the change that must make B refuse it.
        let (bearer, kept) = match removal {
            Removal::RevokeToken => {
                let (pat, token) = a
                    .create_token(name("pat"), all_groups(), both_scopes(), None)
                    .await
                    .unwrap();
                let (_, kept) = a
                    .create_token(name("kept"), all_groups(), both_scopes(), None)
                    .await
                    .unwrap();
                (token, (pat.id, kept))
            }
            Removal::DeleteClient => {
                let (client, secret) = a
                    .create_client(name("c"), all_groups(), both_scopes())
                    .await
                    .unwrap();
                let (keep, keep_secret) = a
                    .create_client(name("k"), all_groups(), both_scopes())
                    .await
                    .unwrap();
                within_a_second("the clients reach B", || {
                    b.issue_access_token(&keep.id, &keep_secret, None).is_ok()
                })
                .await;
                // Issued by B itself, so only B's view of the client can refuse it.
                let token = b.issue_access_token(&client.id, &secret, None).unwrap();
                let kept = b.issue_access_token(&keep.id, &keep_secret, None).unwrap();
                (token.access_token, (client.id, kept.access_token))
            }
        };
        let (id, kept) = kept;
        within_a_second(&format!("{removal:?}: accepted on B first"), || {
            b.authenticate(&bearer).is_ok() && b.authenticate(&kept).is_ok()
        })
        .await;
        let removed = match removal {
            Removal::RevokeToken => a.revoke_token(&id).await.unwrap(),
            Removal::DeleteClient => a.delete_client(&id).await.unwrap(),
        };
        assert!(removed, "{removal:?}");
        let took = within_a_second(&format!("{removal:?} on A refused on B"), || {
            refused(b.authenticate(&bearer)) == Some(Reason::RevokedOrUnknown)
        })
        .await;
        eprintln!("{removal:?} took {took:?} to reach B");
        assert!(
            b.authenticate(&kept).is_ok(),
            "{removal:?}: the other one still works"
        );
        // Removing it again through B finds nothing: B's own view agrees.
        let again = match removal {
            Removal::RevokeToken => b.revoke_token(&id).await.unwrap(),
            Removal::DeleteClient => b.delete_client(&id).await.unwrap(),
        };
        assert!(!again, "{removal:?}");
    }
}

/// Two nodes starting at once on a new bucket both try to create the signing key; they must end
/// with one key, or tokens issued by one would fail on the other with a bad signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_opened_at_once_share_one_signing_key() {
    let cluster = NatsCluster::start(1).await;
    let (a, b) = tokio::join!(open(cluster.url(0), 1), open(cluster.url(0), 1));
    let (client, secret) = a
        .create_client(name("c"), all_groups(), both_scopes())
        .await
        .unwrap();
    within_a_second("the client reaches B", || {
        b.issue_access_token(&client.id, &secret, None).is_ok()
    })
    .await;
    let from_a = a.issue_access_token(&client.id, &secret, None).unwrap();
    let from_b = b.issue_access_token(&client.id, &secret, None).unwrap();
    for (what, registry, token) in [
        ("A's token on B", &b, &from_a),
        ("B's token on A", &a, &from_b),
    ] {
        let got = registry.authenticate(&token.access_token);
        assert!(got.is_ok(), "{what}: {got:?}");
    }
    // A third node opened later reads the same key.
    let c = open(cluster.url(0), 1).await;
    assert!(c.authenticate(&from_a.access_token).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_opened_after_changes_sees_all_of_them() {
    let cluster = NatsCluster::start(1).await;
    let a = open(cluster.url(0), 1).await;
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(
            a.create_client(name(&format!("c{i}")), all_groups(), both_scopes())
                .await
                .unwrap(),
        );
    }
    let mut tokens = Vec::new();
    for i in 0..3 {
        tokens.push(
            a.create_token(name(&format!("t{i}")), all_groups(), both_scopes(), None)
                .await
                .unwrap(),
        );
    }
    assert!(a.delete_client(&clients[1].0.id).await.unwrap());
    assert!(a.revoke_token(&tokens[2].0.id).await.unwrap());

    let late = open(cluster.url(0), 1).await;
    assert_eq!(late.list_clients(), a.list_clients());
    assert_eq!(late.list_tokens(), a.list_tokens());
    assert_eq!(late.list_clients().len(), 2);
    assert_eq!(late.list_tokens().len(), 2);
    let (gone, gone_secret) = &clients[1];
    assert!(
        late.issue_access_token(&gone.id, gone_secret, None)
            .is_err()
    );
    let (kept, kept_secret) = &clients[2];
    assert!(late.issue_access_token(&kept.id, kept_secret, None).is_ok());
    assert_eq!(
        refused(late.authenticate(&tokens[2].1)),
        Some(Reason::RevokedOrUnknown)
    );
    assert!(late.authenticate(&tokens[0].1).is_ok());
}

/// Three servers, the bucket with three replicas, each node connected to a different server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_changes_cross_servers_within_a_second() {
    let cluster = NatsCluster::start(3).await;
    let a = open(cluster.url(0), 3).await;
    let b = open(cluster.url(2), 3).await;
    creations_reach_the_other_node(&a, &b).await;
    let (pat, token) = b
        .create_token(name("r3"), all_groups(), both_scopes(), None)
        .await
        .unwrap();
    within_a_second("B's token works on A", || a.authenticate(&token).is_ok()).await;
    assert!(b.revoke_token(&pat.id).await.unwrap());
    within_a_second("B's revocation is refused on A", || {
        refused(a.authenticate(&token)) == Some(Reason::RevokedOrUnknown)
    })
    .await;
}
