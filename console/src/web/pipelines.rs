//! The pipelines page: health, rates, lag per group and partition, a chart of total lag.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};

use crate::auth::Operator;
use crate::pipelines::{PipelineStatus, skip_record};
use crate::{Console, Error, Result, audit, html};

pub(super) async fn page(State(console): State<Arc<Console>>, who: Operator) -> Response {
    let body = format!(
        "<h1>Pipelines</h1><p>Lag is the records of each group's topics not yet committed by it \
(high watermark − committed offset), sampled every {} s; the page refreshes itself.</p>\
<div id=\"pipelines\" data-refresh=\"/fragments/pipelines\">{}</div>",
        console.config.poll_interval.as_secs_f64(),
        render(&console.watch.latest(), &who)
    );
    html::page("Pipelines", &who.who(), &body).into_response()
}

pub(super) async fn fragment(State(console): State<Arc<Console>>, who: Operator) -> Response {
    Html(render(&console.watch.latest(), &who)).into_response()
}

fn render(statuses: &[PipelineStatus], who: &Operator) -> String {
    if statuses.is_empty() {
        return "<p>First sample in progress…</p>".to_owned();
    }
    let mut out = String::new();
    for s in statuses {
        let rates = s.rates.as_ref().map_or_else(
            || "rates: waiting for a second sample of /metrics".to_owned(),
            |r| {
                format!(
                    "in {:.1}/s · out {:.1}/s · retried {:.1}/s · dead-lettered {:.1}/s",
                    r.consumed, r.sunk, r.retried, r.dead_lettered
                )
            },
        );
        out.push_str(&format!(
            "<section class=\"pipeline\" id=\"pipeline-{n}\"><h2>{n} <span class=\"{c}\">{h}</span></h2>\
<p>{rates}</p><p>total lag: <strong class=\"total-lag\">{lag}</strong> \
<a href=\"/dead-letters?pipeline={n}\">dead letters</a></p>{chart}<pre class=\"health\">{body}</pre>",
            n = html::escape(&s.name),
            c = if s.healthy { "ok" } else { "error" },
            h = if s.healthy { "healthy" } else { "unhealthy" },
            lag = s.total_lag(),
            chart = chart(&s.history),
            body = html::escape(&s.health),
        ));
        for g in &s.groups {
            out.push_str(&format!(
                "<h3>group {}: lag {}</h3>",
                html::escape(&g.group),
                g.total
            ));
            if let Some(e) = &g.error {
                out.push_str(&format!("<p class=\"error\">{}</p>", html::escape(e)));
                continue;
            }
            out.push_str("<table><tr><th>topic</th><th>partition</th><th>committed</th><th>end</th><th>lag</th><th></th></tr>");
            for p in &g.partitions {
                // A partition stuck on a record: skip it (the group's committed offset).
                let skip = match p.position() {
                    at if p.lag > 0 => format!(
                        "<form class=\"inline skip\" method=\"post\" action=\"/skip\">{}{}{}{}{}{}<button type=\"submit\">Skip record {at}…</button></form>",
                        html::hidden("pipeline", &s.name),
                        html::hidden("group", &g.group),
                        html::hidden("topic", &p.topic),
                        html::hidden("partition", &p.partition.to_string()),
                        html::hidden("offset", &at.to_string()),
                        who.csrf_field(),
                    ),
                    _ => String::new(),
                };
                out.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"lag\">{}</td><td>{skip}</td></tr>",
                    html::escape(&p.topic),
                    p.partition,
                    p.committed.map_or_else(|| "none".to_owned(), |c| c.to_string()),
                    p.high,
                    p.lag
                ));
            }
            out.push_str("</table>");
        }
        out.push_str("</section>");
    }
    out
}

/// An inline SVG line of the total lag over the samples kept.
fn chart(history: &[(i64, i64)]) -> String {
    let (w, h) = (360.0, 60.0);
    let max = history.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1) as f64;
    let n = history.len().max(2) as f64 - 1.0;
    let points: Vec<String> = history
        .iter()
        .enumerate()
        .map(|(i, (_, v))| {
            format!(
                "{:.1},{:.1}",
                i as f64 * w / n,
                h - (*v as f64 / max) * (h - 4.0) - 2.0
            )
        })
        .collect();
    format!(
        "<svg class=\"lag-chart\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" \
aria-label=\"total lag over the last {} samples, max {}\"><rect width=\"{w}\" height=\"{h}\" fill=\"#f6f8fb\"/>\
<polyline fill=\"none\" stroke=\"#2a6\" stroke-width=\"2\" points=\"{}\"/></svg>",
        history.len(),
        max as i64,
        points.join(" ")
    )
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct SkipForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
    pipeline: String,
    group: String,
    topic: String,
    partition: i32,
    offset: i64,
}

/// "Skip one poison record": moves a stopped pipeline's group past the record at its
/// committed offset, after a confirmation; audited.
pub(super) async fn skip(
    State(console): State<Arc<Console>>,
    who: Operator,
    axum::extract::Form(form): axum::extract::Form<SkipForm>,
) -> Result<Response> {
    who.check_csrf(&form.csrf)?;
    let spec = console
        .config
        .pipeline(&form.pipeline)
        .ok_or_else(|| Error::NotFound(format!("no pipeline {:?} is watched", form.pipeline)))?;
    let known = spec.groups.iter().any(|g| {
        g.group == form.group
            && g.topics
                .iter()
                .any(|t| format!("{}{t}", console.config.topic_prefix) == form.topic)
    });
    if !known {
        return Err(Error::NotFound(format!(
            "pipeline {} has no group {} on {}",
            form.pipeline, form.group, form.topic
        )));
    }
    let at = format!("{}/{}/{}", form.topic, form.partition, form.offset);
    if form.confirm != "yes" {
        let what = format!(
            "<p>Skip the record at <code>{at}</code>: group <code>{g}</code>'s committed offset moves from \
{o} to {n}, so the pipeline never processes that record. Stop the pipeline first: Kafka takes no \
commit for a group with members.</p>",
            at = html::escape(&at),
            g = html::escape(&form.group),
            o = form.offset,
            n = form.offset + 1,
        );
        let (partition, offset) = (form.partition.to_string(), form.offset.to_string());
        let fields = [
            ("pipeline", form.pipeline.as_str()),
            ("group", &form.group),
            ("topic", &form.topic),
            ("partition", &partition),
            ("offset", &offset),
        ];
        return Ok(super::confirm_page(
            &who,
            "Skip a record",
            &what,
            "/skip",
            &fields,
        ));
    }
    let (brokers, group, topic) = (
        console.config.kafka_brokers.clone(),
        form.group.clone(),
        form.topic.clone(),
    );
    let (partition, offset) = (form.partition, form.offset);
    let skipped = tokio::task::spawn_blocking(move || {
        skip_record(&brokers, &group, &topic, partition, offset)
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))??;
    audit::record(
        &console.pool,
        &who,
        "skip",
        &at,
        1,
        &format!(
            "group {}: offset {} -> {}",
            form.group, skipped.from, skipped.to
        ),
    )
    .await?;
    let body = format!(
        "<h1>Skipped</h1><p id=\"skipped\">Group <code>{}</code> now starts {} at offset {}.</p><p><a href=\"/\">Back to the pipelines</a></p>",
        html::escape(&form.group),
        html::escape(&format!("{}/{}", form.topic, form.partition)),
        skipped.to
    );
    Ok(html::page("Skipped", &who.who(), &body).into_response())
}
