//! The audit page.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::auth::Operator;
use crate::{Console, Result, audit, html};

pub(super) async fn page(State(console): State<Arc<Console>>, who: Operator) -> Result<Response> {
    let entries = audit::latest(&console.pool, 500).await?;
    let rows: String = entries
        .iter()
        .map(|e| {
            format!(
                "<tr class=\"entry\"><td>{}</td><td>{}</td><td>{}</td><td class=\"action\">{}</td><td>{}</td><td class=\"records\">{}</td><td>{}</td></tr>",
                e.at.format("%F %T UTC"),
                html::escape(&e.actor),
                html::escape(&e.role),
                html::escape(&e.action),
                html::escape(&e.target),
                e.records,
                html::escape(&e.detail)
            )
        })
        .collect();
    let body = format!(
        "<h1>Audit</h1><p>Every write of the console: who, what, when, how many records.</p>\
<table id=\"audit\"><tr><th>when</th><th>who</th><th>role</th><th>action</th><th>on</th><th>records</th><th>detail</th></tr>{rows}</table>"
    );
    Ok(html::page("Audit", &who.who(), &body).into_response())
}
