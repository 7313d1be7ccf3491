//! Dead letters as work: groups by fingerprint with filters, the letters of a group, one
//! letter inspected (headers, payload decoded through the registry, the reason).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};

use crate::auth::Operator;
use crate::index::{self, Selection};
use crate::{Console, Error, Result, html};

fn filters(console: &Console, s: &Selection) -> String {
    let options: String = console
        .config
        .pipelines
        .iter()
        .map(|p| {
            format!(
                "<option{}>{}</option>",
                if p.name == s.pipeline {
                    " selected"
                } else {
                    ""
                },
                html::escape(&p.name)
            )
        })
        .collect();
    let field = |name: &str, label: &str, value: &str, kind: &str| {
        format!(
            "<label>{label} <input type=\"{kind}\" name=\"{name}\" value=\"{}\"></label> ",
            html::escape(value)
        )
    };
    format!(
        "<form method=\"get\" action=\"/dead-letters\" id=\"filters\"><label>pipeline <select name=\"pipeline\">{options}</select></label> \
{}{}{}{}{}<button type=\"submit\">Filter</button></form>",
        field("class", "class", &s.class, "text"),
        field("key", "key", &s.key, "text"),
        field(
            "original_topic",
            "original topic",
            &s.original_topic,
            "text"
        ),
        field("since", "since (UTC)", &s.since, "datetime-local"),
        field("until", "until (UTC)", &s.until, "datetime-local"),
    )
}

fn checked(console: &Console, mut s: Selection) -> Result<Selection> {
    if s.pipeline.is_empty() {
        s.pipeline = console
            .config
            .pipelines
            .first()
            .map(|p| p.name.clone())
            .unwrap_or_default();
    }
    if console.config.pipeline(&s.pipeline).is_none() {
        return Err(Error::NotFound(format!(
            "no pipeline {:?} is watched",
            s.pipeline
        )));
    }
    s.validate()?;
    Ok(s)
}

/// A form starting a redrive preview of `s`.
fn redrive_form(who: &Operator, console: &Console, s: &Selection, label: &str) -> String {
    let fields = [
        ("pipeline", &s.pipeline),
        ("fingerprint", &s.fingerprint),
        ("class", &s.class),
        ("key", &s.key),
        ("original_topic", &s.original_topic),
        ("since", &s.since),
        ("until", &s.until),
    ];
    let hidden: String = fields.iter().map(|(k, v)| html::hidden(k, v)).collect();
    format!(
        "<form class=\"inline redrive\" method=\"post\" action=\"/jobs\">{hidden}{}\
<label>rate <input type=\"number\" name=\"rate\" min=\"1\" value=\"{}\" size=\"5\">/s</label> \
<button type=\"submit\">{}</button></form>",
        who.csrf_field(),
        console.config.default_rate,
        html::escape(label)
    )
}

pub(super) async fn groups(
    State(console): State<Arc<Console>>,
    who: Operator,
    Query(selection): Query<Selection>,
) -> Result<Response> {
    let s = checked(
        &console,
        Selection {
            fingerprint: String::new(),
            ..selection
        },
    )?;
    let groups = index::groups(&console.pool, &s).await?;
    let mut rows = String::new();
    for g in &groups {
        let group = Selection {
            fingerprint: g.fingerprint.clone(),
            ..s.clone()
        };
        rows.push_str(&format!(
            "<tr class=\"group\"><td><a href=\"/dead-letters/list?{q}\">{f}</a><br><small>{sample}</small></td>\
<td>{class}</td><td class=\"count\">{count}</td><td class=\"open\">{open}</td><td>{oldest}</td><td>{newest}</td><td>{form}</td></tr>",
            q = group.query(),
            f = html::escape(&g.fingerprint),
            sample = html::escape(&g.sample),
            class = html::escape(&g.error_class),
            count = g.count,
            open = g.open,
            oldest = g.oldest.map_or_else(|| "-".into(), |t| t.format("%F %T").to_string()),
            newest = g.newest.map_or_else(|| "-".into(), |t| t.format("%F %T").to_string()),
            form = if g.open > 0 { redrive_form(&who, &console, &group, "Preview redrive") } else { "resolved".into() },
        ));
    }
    let topic = console.config.dlq_topic(&s.pipeline);
    let body = format!(
        "<h1>Dead letters of {p}</h1>{filters}<p>Topic <code>{t}</code>; grouped by fingerprint (error class + the message with \
numbers, UUIDs and quoted values replaced). <em>open</em>: not yet redriven.</p>\
<table id=\"groups\"><tr><th>group</th><th>class</th><th>count</th><th>open</th><th>oldest</th><th>newest</th><th></th></tr>{rows}</table>\
{empty}<h2>Purge</h2><form method=\"post\" action=\"/purge\">{pipeline}{csrf}<button type=\"submit\" id=\"purge\">Purge resolved…</button></form>\
<p>Deletes only the dead letters a redrive covered (below the engine's replay marks), never one still open.</p>",
        p = html::escape(&s.pipeline),
        filters = filters(&console, &s),
        t = html::escape(&topic),
        empty = if groups.is_empty() {
            "<p>No dead letters match.</p>"
        } else {
            ""
        },
        pipeline = html::hidden("pipeline", &s.pipeline),
        csrf = who.csrf_field(),
    );
    Ok(html::page("Dead letters", &who.who(), &body).into_response())
}

pub(super) async fn list(
    State(console): State<Arc<Console>>,
    who: Operator,
    Query(selection): Query<Selection>,
) -> Result<Response> {
    let s = checked(&console, selection)?;
    let letters = index::letters(&console.pool, &s, 200).await?;
    let body = format!(
        "<h1>Dead letters</h1><p>{}</p><p>{}</p>{}",
        html::escape(&s.describe()),
        redrive_form(&who, &console, &s, "Preview redrive of these"),
        letters_table(&s.pipeline, &letters)
    );
    Ok(html::page("Dead letters", &who.who(), &body).into_response())
}

/// A table of dead letters linking to their inspection.
pub(super) fn letters_table(pipeline: &str, letters: &[index::Letter]) -> String {
    let mut out = String::from(
        "<table class=\"letters\"><tr><th>at</th><th>key</th><th>class</th><th>original topic</th><th>attempts</th><th>failed</th><th>reason</th><th>redriven by</th></tr>",
    );
    for l in letters {
        out.push_str(&format!(
            "<tr><td><a href=\"/dead-letters/{p}/{part}/{off}\">{part}/{off}</a></td><td class=\"key\">{k}</td><td>{c}</td><td>{o}</td><td>{a}</td><td>{f}</td><td>{m}</td><td>{r}</td></tr>",
            p = html::query_escape(pipeline),
            part = l.partition,
            off = l.offset,
            k = html::escape(&l.record_key),
            c = html::escape(&l.error_class),
            o = html::escape(&l.original_topic),
            a = l.attempts.map_or_else(|| "-".into(), |a| a.to_string()),
            f = l.failed_at.map_or_else(|| "-".into(), |t| t.format("%F %T").to_string()),
            m = html::escape(&l.error_message),
            r = l.redriven_by.map_or_else(|| "-".into(), |j| format!("<a href=\"/jobs/{j}\">{j}</a>")),
        ));
    }
    out.push_str("</table>");
    out
}

pub(super) async fn inspect(
    State(console): State<Arc<Console>>,
    who: Operator,
    Path((pipeline, partition, offset)): Path<(String, i32, i64)>,
) -> Result<Response> {
    if console.config.pipeline(&pipeline).is_none() {
        return Err(Error::NotFound(format!(
            "no pipeline {pipeline:?} is watched"
        )));
    }
    let topic = console.config.dlq_topic(&pipeline);
    let letter = index::read_one(&console.config.kafka_brokers, &topic, partition, offset).await?;
    let text = letter
        .inspect(&console.codec, &console.config.topic_prefix)
        .await;
    let body = format!(
        "<h1>Dead letter {t}/{partition}/{offset}</h1><p>reason: <strong class=\"reason\">{r}</strong></p><pre id=\"inspect\">{text}</pre>",
        t = html::escape(&topic),
        r = html::escape(letter.get(anineplus_streams::dead_letter::header::ERROR_MESSAGE)),
        text = html::escape(&text)
    );
    Ok(html::page("Dead letter", &who.who(), &body).into_response())
}
