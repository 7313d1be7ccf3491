//! The pipelines page: health, rates, lag per group and partition, a chart of total lag.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};

use crate::auth::Operator;
use crate::pipelines::PipelineStatus;
use crate::{Console, html};

pub(super) async fn page(State(console): State<Arc<Console>>, who: Operator) -> Response {
    let body = format!(
        "<h1>Pipelines</h1><p>Lag is the records of each group's topics not yet committed by it \
(high watermark − committed offset), sampled every {} s; the page refreshes itself.</p>\
<div id=\"pipelines\" data-refresh=\"/fragments/pipelines\">{}</div>",
        console.config.poll_interval.as_secs_f64(),
        render(&console.watch.latest())
    );
    html::page("Pipelines", &who.who(), &body).into_response()
}

pub(super) async fn fragment(State(console): State<Arc<Console>>, _who: Operator) -> Response {
    Html(render(&console.watch.latest())).into_response()
}

fn render(statuses: &[PipelineStatus]) -> String {
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
            out.push_str("<table><tr><th>topic</th><th>partition</th><th>committed</th><th>end</th><th>lag</th></tr>");
            for p in &g.partitions {
                out.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"lag\">{}</td></tr>",
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
