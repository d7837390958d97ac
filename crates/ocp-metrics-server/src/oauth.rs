//! `POST /oauth2/token`: the OAuth 2.0 client-credentials grant (RFC 6749 section 4.4).

use crate::admin::failed_authentication;
use crate::app::App;
use crate::credentials::{basic_authorization, basic_credentials, form_urlencoded};
use crate::error::ApiError;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use ocp_metrics_auth::{OAuthError, check_grant_type};
use std::collections::HashMap;
use std::net::SocketAddr;

/// `POST /oauth2/token`: the client-credentials grant (RFC 6749 section 4.4).
pub async fn token(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let form: HashMap<String, String> = form_urlencoded(&body);
    let basic = basic_authorization(&headers);
    let auth = app.auth()?;
    let issued = check_grant_type(form.get("grant_type").map(String::as_str).unwrap_or(""))
        .and_then(|()| client_credentials(basic, &form))
        .and_then(|(id, secret)| {
            auth.issue_access_token(&id, &secret, form.get("scope").map(String::as_str))
        });
    let token = match issued {
        Ok(token) => token,
        Err(e @ OAuthError::InvalidClient(_)) => {
            let unauthorized = ApiError::OAuth(e, basic.is_some());
            return Err(failed_authentication(
                &app,
                peer,
                "/oauth2/token",
                unauthorized,
            ));
        }
        Err(e) => return Err(ApiError::OAuth(e, basic.is_some())),
    };
    let mut response = Json(token).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        "no-store".parse().expect("static header"),
    );
    Ok(response)
}

/// The client id and secret, from HTTP Basic or the form fields.
fn client_credentials(
    basic: Option<&str>,
    form: &HashMap<String, String>,
) -> Result<(String, String), OAuthError> {
    match basic {
        Some(h) => basic_credentials(h),
        None => match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => Ok((id.clone(), secret.clone())),
            _ => Err(OAuthError::InvalidClient(
                "authenticate the client with HTTP Basic or the form fields client_id and client_secret".into(),
            )),
        },
    }
}
