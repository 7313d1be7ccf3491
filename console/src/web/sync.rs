//! The search sync page: per index, its latest run (verify, repair or reindex) with its
//! progress or outcome, refreshed live, and the forms that start one (repair and reindex
//! confirmed first).

use std::sync::Arc;

use anineplus_schemas::indices::Index;
use axum::extract::{Form, State};
use axum::response::{IntoResponse, Redirect, Response};

use crate::auth::Operator;
use crate::sync::{Action, Target};
use crate::{Console, Error, Result, html};

/// The page.
pub(super) async fn page(State(console): State<Arc<Console>>, who: Operator) -> Response {
    let body = format!(
        "<h1>Search sync</h1><p>Each index against PostgreSQL, the source of truth: <b>verify</b> \
compares ids, versions and denormalised values; <b>repair</b> verifies, then writes what drifted \
from the rows; <b>reindex</b> builds the next generation from PostgreSQL and switches the alias, \
with no search downtime (<code>anineplus-search</code> does the same from a shell).</p>\
<div id=\"syncs\" data-refresh=\"/fragments/sync\">{}</div>",
        table(&console, &who)
    );
    html::page("Search sync", &who.who(), &body).into_response()
}

/// The table alone, for the page's refresh.
pub(super) async fn fragment(State(console): State<Arc<Console>>, who: Operator) -> Response {
    axum::response::Html(table(&console, &who)).into_response()
}

fn table(console: &Console, who: &Operator) -> String {
    let latest = console.syncs.latest();
    let mut rows = String::new();
    for index in Index::ALL {
        let name = index.name();
        let (last, status) = match latest.get(name) {
            None => ("never".to_owned(), String::new()),
            Some(run) => {
                let status = match &run.outcome {
                    None => format!(
                        "<span class=\"running\">running: {}</span>",
                        html::escape(&run.progress.lock().unwrap_or_else(|e| e.into_inner()))
                    ),
                    Some(Ok(summary)) => {
                        format!("<span class=\"done\">{}</span>", html::escape(summary))
                    }
                    Some(Err(e)) => {
                        format!("<span class=\"failed\">failed: {}</span>", html::escape(e))
                    }
                };
                (
                    format!(
                        "{} by {} at {}",
                        run.action.as_str(),
                        html::escape(&run.by),
                        html::time_ms(Some(run.started_ms))
                    ),
                    status,
                )
            }
        };
        let forms: String = [Action::Verify, Action::Repair, Action::Reindex]
            .iter()
            .map(|a| {
                format!(
                    "<form class=\"inline\" method=\"post\" action=\"/sync\">{csrf}{i}{act}\
<button type=\"submit\" id=\"{a}-{name}\">{a}</button></form> ",
                    csrf = who.csrf_field(),
                    i = html::hidden("index", name),
                    act = html::hidden("action", a.as_str()),
                    a = a.as_str(),
                )
            })
            .collect();
        rows.push_str(&format!(
            "<tr id=\"sync-{name}\"><td><code>{alias}</code></td><td>{last}</td><td class=\"status\">{status}</td><td>{forms}</td></tr>",
            alias = html::escape(&index.alias(&console.config.index_prefix)),
        ));
    }
    format!(
        "<table><tr><th>index</th><th>latest run</th><th>progress or outcome</th><th></th></tr>{rows}</table>"
    )
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct Start {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
    index: String,
    action: String,
}

/// Starts a run (repair and reindex after a confirmation).
pub(super) async fn start(
    State(console): State<Arc<Console>>,
    who: Operator,
    Form(form): Form<Start>,
) -> Result<Response> {
    who.check_csrf(&form.csrf)?;
    let index = Index::ALL
        .into_iter()
        .find(|i| i.name() == form.index)
        .ok_or_else(|| Error::NotFound(format!("no index {:?}", form.index)))?;
    let action = Action::parse(&form.action)
        .ok_or_else(|| Error::NotFound(format!("no sync action {:?}", form.action)))?;
    if action.writes() && form.confirm != "yes" {
        let alias = index.alias(&console.config.index_prefix);
        let what = match action {
            Action::Repair => format!(
                "<p>Repair <code>{}</code>: verify it against PostgreSQL, then write every drifted \
document from its row (at the row's version: a newer document from the indexer still wins).</p>",
                html::escape(&alias)
            ),
            _ => format!(
                "<p>Reindex <code>{}</code>: build its next generation from PostgreSQL, catch it up, \
switch the alias to it, then delete the old generation. Searches keep being served throughout.</p>",
                html::escape(&alias)
            ),
        };
        let fields = [("index", index.name()), ("action", action.as_str())];
        return Ok(super::confirm_page(
            &who,
            &format!("{} {}", action.as_str(), index.name()),
            &what,
            "/sync",
            &fields,
        ));
    }
    let target = Target {
        database_url: console.config.database_url.clone(),
        search_url: console.config.search_url.clone(),
        index_prefix: console.config.index_prefix.clone(),
    };
    console
        .syncs
        .start(target, console.pool.clone(), who, index, action)
        .map_err(Error::BadRequest)?;
    Ok(Redirect::to("/sync").into_response())
}
