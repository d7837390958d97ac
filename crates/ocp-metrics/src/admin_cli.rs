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

#[derive(Debug, clap::Subcommand)]
pub enum ClientAction {
    /// Create an API client; prints its id and secret (shown once).
    Create {
        #[arg(long)]
        name: String,
        /// Group names, or `*` for all groups (repeatable or comma-separated).
        #[arg(long = "group", value_delimiter = ',', required = true)]
        groups: Vec<String>,
        /// `metrics:read`, `events:write` (repeatable or comma-separated).
        #[arg(long = "scope", value_delimiter = ',', required = true)]
        scopes: Vec<String>,
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
        #[arg(long)]
        name: String,
        #[arg(long = "group", value_delimiter = ',', required = true)]
        groups: Vec<String>,
        #[arg(long = "scope", value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Expiry as RFC 3339; none means it never expires.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List personal access tokens.
    List,
    /// Revoke a personal access token at once.
    Revoke { id: String },
}

pub fn client(action: ClientAction, t: &Target) -> anyhow::Result<()> {
    match action {
        ClientAction::Create {
            name,
            groups,
            scopes,
        } => print(call(
            t,
            "POST",
            "/admin/v1/clients",
            Some(json!({"name": name, "groups": groups, "scopes": scopes})),
        )?),
        ClientAction::List => print(call(t, "GET", "/admin/v1/clients", None)?),
        ClientAction::Delete { id } => {
            print(call(t, "DELETE", &format!("/admin/v1/clients/{id}"), None)?)
        }
    }
}

pub fn token(action: TokenAction, t: &Target) -> anyhow::Result<()> {
    match action {
        TokenAction::Create {
            name,
            groups,
            scopes,
            expires_at,
        } => print(call(
            t,
            "POST",
            "/admin/v1/tokens",
            Some(
                json!({"name": name, "groups": groups, "scopes": scopes, "expires_at": expires_at}),
            ),
        )?),
        TokenAction::List => print(call(t, "GET", "/admin/v1/tokens", None)?),
        TokenAction::Revoke { id } => {
            print(call(t, "DELETE", &format!("/admin/v1/tokens/{id}"), None)?)
        }
    }
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
