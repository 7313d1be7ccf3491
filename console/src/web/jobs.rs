//! Redrive jobs: preview (the confirmation step), run, progress with succeeded/returned;
//! purge of what is resolved.

use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use uuid::Uuid;

use super::confirm_page;
use crate::auth::Operator;
use crate::index::{self, Selection};
use crate::jobs::{self, Job};
use crate::{Console, Error, Result, audit, html};

#[derive(Debug, serde::Deserialize)]
pub(super) struct JobForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    rate: String,
    #[serde(default)]
    pipeline: String,
    #[serde(default)]
    fingerprint: String,
    #[serde(default)]
    class: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    original_topic: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
}

pub(super) async fn create(
    State(console): State<Arc<Console>>,
    who: Operator,
    Form(form): Form<JobForm>,
) -> Result<Response> {
    who.check_csrf(&form.csrf)?;
    let s = Selection {
        pipeline: form.pipeline.clone(),
        fingerprint: form.fingerprint.clone(),
        class: form.class.clone(),
        key: form.key.clone(),
        original_topic: form.original_topic.clone(),
        since: form.since.clone(),
        until: form.until.clone(),
    };
    if console.config.pipeline(&s.pipeline).is_none() {
        return Err(Error::NotFound(format!(
            "no pipeline {:?} is watched",
            s.pipeline
        )));
    }
    let rate: u32 = form
        .rate
        .trim()
        .parse()
        .ok()
        .filter(|r| *r > 0)
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "rate {:?} is not a whole number of records per second above 0",
                form.rate
            ))
        })?;
    let topic = console.config.dlq_topic(&s.pipeline);
    if form.confirm != "yes" {
        let plan = jobs::preview(&console.pool, &s).await?;
        let total: i64 = plan.iter().map(|(_, n)| n).sum();
        if total == 0 {
            return Err(Error::BadRequest(format!(
                "no open dead letter matches {}",
                s.describe()
            )));
        }
        let sample = index::letters(&console.pool, &Selection { ..s.clone() }, 20).await?;
        let rows: String = plan
            .iter()
            .map(|(t, n)| {
                format!(
                    "<tr><td>{}</td><td class=\"would\">{n}</td></tr>",
                    html::escape(t)
                )
            })
            .collect();
        let what = format!(
            "<p>Dry run: redriving <strong id=\"preview-total\">{total}</strong> open dead letter(s) of {sel} \
from <code>{topic}</code> at most {rate}/s, each to its original topic with a <code>redrive-id</code> header:</p>\
<table id=\"preview\"><tr><th>to topic</th><th>records</th></tr>{rows}</table>\
<p>First of them:</p>{sample}<p>Only the dead letters indexed now are sent (the job stops at today's end offsets); \
the ones that fail again come back as new dead letters and are counted as returned.</p>",
            sel = html::escape(&s.describe()),
            topic = html::escape(&topic),
            sample = super::dead_letters::letters_table(&s.pipeline, &sample),
        );
        let rate_text = rate.to_string();
        let fields = [
            ("pipeline", s.pipeline.as_str()),
            ("fingerprint", &s.fingerprint),
            ("class", &s.class),
            ("key", &s.key),
            ("original_topic", &s.original_topic),
            ("since", &s.since),
            ("until", &s.until),
            ("rate", &rate_text),
        ];
        return Ok(confirm_page(
            &who,
            "Redrive preview",
            &what,
            "/jobs",
            &fields,
        ));
    }
    let job = jobs::create(
        &console.pool,
        &console.config.kafka_brokers,
        &topic,
        &s,
        rate,
        &who.actor(),
    )
    .await?;
    audit::record(
        &console.pool,
        &who,
        "redrive",
        &topic,
        job.total as u64,
        &format!("job {}: {} at most {rate}/s", job.id, s.describe()),
    )
    .await?;
    console.runner.start(job.id);
    Ok(Redirect::to(&format!("/jobs/{}", job.id)).into_response())
}

pub(super) async fn list(State(console): State<Arc<Console>>, who: Operator) -> Result<Response> {
    let jobs = jobs::list(&console.pool, 100).await?;
    let rows: String = jobs
        .iter()
        .map(|j| {
            format!(
                "<tr><td><a href=\"/jobs/{id}\">{id}</a></td><td>{p}</td><td>{s}</td><td>{st}</td><td>{sent}/{total}</td><td>{ok}</td><td>{ret}</td><td>{by}</td><td>{at}</td></tr>",
                id = j.id,
                p = html::escape(&j.pipeline),
                s = html::escape(&j.selection),
                st = html::escape(&j.status),
                sent = j.sent,
                total = j.total,
                ok = j.succeeded(),
                ret = j.returned,
                by = html::escape(&j.created_by),
                at = j.created_at.format("%F %T"),
            )
        })
        .collect();
    let body = format!(
        "<h1>Redrive jobs</h1><table id=\"jobs\"><tr><th>job</th><th>pipeline</th><th>selection</th><th>status</th><th>sent</th>\
<th>succeeded</th><th>returned</th><th>by</th><th>created</th></tr>{rows}</table>"
    );
    Ok(html::page("Redrive jobs", &who.who(), &body).into_response())
}

/// The live part of a job's page: status, progress, outcome, and the returns linked.
async fn live(console: &Console, job: &Job) -> Result<String> {
    let returned = index::returned(&console.pool, job.id, 200).await?;
    Ok(format!(
        "{}<h2>Returned</h2>{}",
        progress_html(job),
        super::dead_letters::letters_table(&job.pipeline, &returned)
    ))
}

fn progress_html(job: &Job) -> String {
    format!(
        "<p>status: <strong class=\"status\">{st}</strong>{err}</p><p><progress max=\"{total}\" value=\"{sent}\"></progress> \
sent <span class=\"sent\">{sent}</span>/{total}</p><p class=\"outcome\">succeeded {ok} / returned {ret}</p>",
        st = html::escape(&job.status),
        err = job.error.as_ref().map_or_else(String::new, |e| format!(
            " <span class=\"error\">{}</span>",
            html::escape(e)
        )),
        total = job.total,
        sent = job.sent,
        ok = job.succeeded(),
        ret = job.returned,
    )
}

fn parse_id(id: &str) -> Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| Error::BadRequest(format!("{id:?} is not a job id")))
}

pub(super) async fn show(
    State(console): State<Arc<Console>>,
    who: Operator,
    Path(id): Path<String>,
) -> Result<Response> {
    let job = jobs::get(&console.pool, parse_id(&id)?).await?;
    let body = format!(
        "<h1>Redrive job {id}</h1><p>{sel}, at most {rate}/s, by {by} at {at}</p>\
<p><em>succeeded</em>: sent and not back as a dead letter (so far); <em>returned</em>: dead letters carrying this job's redrive id.</p>\
<div id=\"progress\" data-refresh=\"/fragments/jobs/{id}\">{progress}</div>",
        id = job.id,
        sel = html::escape(&job.selection),
        rate = job.max_per_second,
        by = html::escape(&job.created_by),
        at = job.created_at.format("%F %T UTC"),
        progress = live(&console, &job).await?,
    );
    Ok(html::page("Redrive job", &who.who(), &body).into_response())
}

pub(super) async fn progress(
    State(console): State<Arc<Console>>,
    _who: Operator,
    Path(id): Path<String>,
) -> Result<Response> {
    let job = jobs::get(&console.pool, parse_id(&id)?).await?;
    Ok(Html(live(&console, &job).await?).into_response())
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct PurgeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
    pipeline: String,
}

pub(super) async fn purge(
    State(console): State<Arc<Console>>,
    who: Operator,
    Form(form): Form<PurgeForm>,
) -> Result<Response> {
    who.check_csrf(&form.csrf)?;
    if console.config.pipeline(&form.pipeline).is_none() {
        return Err(Error::NotFound(format!(
            "no pipeline {:?} is watched",
            form.pipeline
        )));
    }
    let topic = console.config.dlq_topic(&form.pipeline);
    let brokers = &console.config.kafka_brokers;
    if form.confirm != "yes" {
        let plan = jobs::purge_plan(&console.pool, brokers, &topic).await?;
        let what = format!(
            "<p>Purge <code>{t}</code>: <strong id=\"purge-deleted\">{d}</strong> redriven dead letter(s) would be deleted, \
<strong id=\"purge-kept\">{k}</strong> kept (not redriven, or behind one that was not: Kafka deletes prefixes only).</p>",
            t = html::escape(&topic),
            d = plan.deleted,
            k = plan.kept,
        );
        return Ok(confirm_page(
            &who,
            "Purge resolved",
            &what,
            "/purge",
            &[("pipeline", &form.pipeline)],
        ));
    }
    let done = jobs::purge_resolved(&console.pool, brokers, &topic).await?;
    audit::record(
        &console.pool,
        &who,
        "purge",
        &topic,
        done.deleted,
        &format!("kept {}", done.kept),
    )
    .await?;
    let body = format!(
        "<h1>Purged</h1><p id=\"purged\">Deleted {} resolved dead letter(s) of <code>{}</code>, kept {}.</p><p><a href=\"/dead-letters?pipeline={}\">Back to the dead letters</a></p>",
        done.deleted,
        html::escape(&topic),
        done.kept,
        html::query_escape(&form.pipeline)
    );
    Ok(html::page("Purged", &who.who(), &body).into_response())
}
