//! `ocp-metrics client ...` and `ocp-metrics token ...`: operator commands that call a running
//! server's admin API.

use anyhow::{Context, bail};
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
pub struct Target {
    /// Base URL of the running server.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// File holding the admin token the server was started with; or set the environment
    /// variable OCP_METRICS_ADMIN_TOKEN (never an argument: other local users can read those).
    #[arg(long, global = true, value_name = "PATH")]
    admin_token_file: Option<std::path::PathBuf>,
}

/// What a client and a token are granted alike.
#[derive(Debug, clap::Args)]
pub struct Grant {
    #[arg(long)]
    name: String,
    /// Group names, or `*` for all groups (repeatable or comma-separated).
    #[arg(long = "group", value_delimiter = ',', required = true)]
    groups: Vec<String>,
    /// `metrics:read`, `events:write` (repeatable or comma-separated).
    #[arg(long = "scope", value_delimiter = ',', required = true)]
    scopes: Vec<String>,
}

impl Grant {
    /// The fields of the admin API's create requests.
    fn json(self) -> Value {
        json!({"name": self.name, "groups": self.groups, "scopes": self.scopes})
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum ClientAction {
    /// Create an API client; prints its id and secret (shown once).
    Create {
        #[command(flatten)]
        grant: Grant,
    },
    /// List API clients.
    List,
    /// Delete an API client; its access tokens stop working at once.
    Delete { id: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenAction {
    /// Create a personal access token; prints it (shown once).
    Create {
        #[command(flatten)]
        grant: Grant,
        /// Expiry as RFC 3339; none means it never expires.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List personal access tokens.
    List,
    /// Revoke a personal access token at once.
    Revoke { id: String },
}

/// What the admin API does with a collection (its clients or its tokens).
enum Change {
    Create(Value),
    List,
    Remove(String),
}

pub fn client(action: ClientAction, t: &Target) -> anyhow::Result<()> {
    let change = match action {
        ClientAction::Create { grant } => Change::Create(grant.json()),
        ClientAction::List => Change::List,
        ClientAction::Delete { id } => Change::Remove(id),
    };
    manage(t, "clients", change)
}

pub fn token(action: TokenAction, t: &Target) -> anyhow::Result<()> {
    let change = match action {
        TokenAction::Create { grant, expires_at } => {
            let mut body = grant.json();
            body["expires_at"] = json!(expires_at);
            Change::Create(body)
        }
        TokenAction::List => Change::List,
        TokenAction::Revoke { id } => Change::Remove(id),
    };
    manage(t, "tokens", change)
}

/// Calls the admin API on `/admin/v1/<collection>` and prints its answer.
fn manage(t: &Target, collection: &str, change: Change) -> anyhow::Result<()> {
    let path = format!("/admin/v1/{collection}");
    let answer = match change {
        Change::Create(body) => call(t, "POST", &path, Some(body)),
        Change::List => call(t, "GET", &path, None),
        Change::Remove(id) => call(t, "DELETE", &format!("{path}/{id}"), None),
    };
    print(answer?)
}

fn call(t: &Target, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let Some(admin) = crate::operator_token(crate::ADMIN_TOKEN_ENV, t.admin_token_file.as_deref())?
    else {
        bail!("set OCP_METRICS_ADMIN_TOKEN (or --admin-token-file) to the server's admin token");
    };
    let admin = admin.expose();
    let url = format!("{}{path}", t.server.trim_end_matches('/'));
    let req = ureq::request(method, &url).set("Authorization", &format!("Bearer {admin}"));
    let result = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match result {
        Ok(r) if r.status() == 204 => Ok(json!({"status": "done"})),
        Ok(r) => r.into_json().context("reading the answer"),
        Err(ureq::Error::Status(code, r)) => {
            let body: Value = r.into_json().unwrap_or(Value::Null);
            bail!(
                "the server answered {code}: {}",
                body["message"].as_str().unwrap_or("(no message)")
            )
        }
        Err(e) => Err(e).with_context(|| format!("calling {url}")),
    }
}

fn print(v: Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
