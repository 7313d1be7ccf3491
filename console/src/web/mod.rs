//! The routes: sign-in, the pages, their live fragments, and the write actions (each
//! behind the CSRF check and a confirmation step, then written to the audit log).

mod audit;
mod dead_letters;
mod jobs;
mod pipelines;
mod schemas;
mod sync;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::auth::{self, Operator};
use crate::{Console, html};

/// The console's router.
pub(crate) fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(pipelines::page))
        .route("/fragments/pipelines", get(pipelines::fragment))
        .route("/dead-letters", get(dead_letters::groups))
        .route("/dead-letters/list", get(dead_letters::list))
        .route(
            "/dead-letters/{pipeline}/{partition}/{offset}",
            get(dead_letters::inspect),
        )
        .route("/jobs", get(jobs::list).post(jobs::create))
        .route("/jobs/{id}", get(jobs::show))
        .route("/fragments/jobs/{id}", get(jobs::progress))
        .route("/purge", axum::routing::post(jobs::purge))
        .route("/skip", axum::routing::post(pipelines::skip))
        .route("/schemas", get(schemas::subjects))
        .route("/schemas/{subject}", get(schemas::subject))
        .route(
            "/schemas/{subject}/check",
            axum::routing::post(schemas::check),
        )
        .route("/sync", get(sync::page).post(sync::start))
        .route("/fragments/sync", get(sync::fragment))
        .route("/audit", get(audit::page))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", get(sign_out))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(console)
}

async fn sign_in_page() -> Response {
    html::bare("Sign in", &auth::sign_in_page("")).into_response()
}

#[derive(serde::Deserialize)]
struct SignIn {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    token: String,
}

async fn sign_in(State(console): State<Arc<Console>>, Form(form): Form<SignIn>) -> Response {
    let token = if !form.token.trim().is_empty() {
        form.token
    } else if form.email.trim().is_empty() {
        let page = auth::sign_in_page("Give your email and password, or a token of the API.");
        return (StatusCode::BAD_REQUEST, html::bare("Sign in", &page)).into_response();
    } else {
        match auth::api_login(
            &console.http,
            &console.config.api_url,
            form.email.trim(),
            &form.password,
        )
        .await
        {
            Ok(token) => token,
            Err(auth::LoginFailure::Refused(message)) => {
                let page = auth::sign_in_page(&format!("The API refused the sign-in: {message}"));
                return (StatusCode::UNAUTHORIZED, html::bare("Sign in", &page)).into_response();
            }
            Err(auth::LoginFailure::Unavailable(message)) => {
                tracing::warn!(reason = %message, "sign-in through the API failed");
                let page = auth::sign_in_page(&message);
                return (StatusCode::BAD_GATEWAY, html::bare("Sign in", &page)).into_response();
            }
        }
    };
    match console.sessions.sign_in(&token) {
        Ok(sid) => (
            [(header::SET_COOKIE, console.sessions.cookie(&sid))],
            Redirect::to("/"),
        )
            .into_response(),
        Err(refusal) => {
            tracing::info!(refusal = ?refusal, "sign-in refused");
            auth::refused(&refusal)
        }
    }
}

async fn sign_out(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let mut parts = axum::http::Request::new(()).into_parts().0;
    parts.headers = headers;
    if let Some(sid) = auth::session_id(&parts) {
        console.sessions.sign_out(&sid);
    }
    (
        [(header::SET_COOKIE, console.sessions.cookie(""))],
        Redirect::to("/sign-in"),
    )
        .into_response()
}

async fn health(State(console): State<Arc<Console>>) -> Response {
    match sqlx::query("SELECT 1").execute(&console.pool).await {
        Ok(_) => (StatusCode::OK, "ok").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}")).into_response(),
    }
}

async fn metrics() -> Response {
    use prometheus::Encoder;
    let mut out = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    if let Err(e) = encoder.encode(&prometheus::default_registry().gather(), &mut out) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], out).into_response()
}

/// A confirmation page: `what` is about to happen; the form re-posts `fields` with
/// `confirm=yes`.
fn confirm_page(
    who: &Operator,
    title: &str,
    what: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> Response {
    let hidden: String = fields.iter().map(|(k, v)| html::hidden(k, v)).collect();
    let body = format!(
        "<h1>{t}</h1><div class=\"confirm\">{what}<form method=\"post\" action=\"{action}\">{hidden}{csrf}\
{confirm}<p><button type=\"submit\" id=\"confirm\">Confirm</button> <a href=\"javascript:history.back()\">Cancel</a></p></form></div>",
        t = html::escape(title),
        csrf = who.csrf_field(),
        confirm = html::hidden("confirm", "yes"),
    );
    html::page(title, &who.who(), &body).into_response()
}
