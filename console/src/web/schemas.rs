//! Schemas: the registry's subjects, a subject's versions and compatibility level, a
//! side-by-side diff of two versions, and "would this schema be accepted?" (the registry's
//! own compatibility check; nothing is registered).

use std::sync::Arc;

use anineplus_schemas::registry_client::RegistryClient;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Response};

use crate::auth::Operator;
use crate::{Console, Error, Result, html};

fn registry(console: &Console) -> RegistryClient {
    RegistryClient::new(&console.config.schema_registry_url)
}

fn failed(e: anineplus_schemas::registry_client::RegistryError) -> Error {
    match e {
        anineplus_schemas::registry_client::RegistryError::NotFound { .. } => {
            Error::NotFound(e.to_string())
        }
        other => Error::Task(format!("schema registry: {other}")),
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct SubjectsQuery {
    q: String,
}

pub(super) async fn subjects(
    State(console): State<Arc<Console>>,
    who: Operator,
    Query(query): Query<SubjectsQuery>,
) -> Result<Response> {
    let all = registry(&console).subjects().await.map_err(failed)?;
    let shown: Vec<&String> = all
        .iter()
        .filter(|s| s.contains(query.q.trim()))
        .take(500)
        .collect();
    let rows: String = shown
        .iter()
        .map(|s| {
            format!(
                "<li><a href=\"/schemas/{}\">{}</a></li>",
                html::query_escape(s),
                html::escape(s)
            )
        })
        .collect();
    let body = format!(
        "<h1>Schemas</h1><form method=\"get\" action=\"/schemas\"><label>subject contains \
<input name=\"q\" value=\"{q}\"></label> <button type=\"submit\">Filter</button></form>\
<p>{n} of {total} subject(s).</p><ul id=\"subjects\">{rows}</ul>",
        q = html::escape(&query.q),
        n = shown.len(),
        total = all.len(),
    );
    Ok(html::page("Schemas", &who.who(), &body).into_response())
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct VersionsQuery {
    a: Option<i32>,
    b: Option<i32>,
}

/// `text` pretty-printed when it is JSON (as the registry stores it compact).
fn pretty(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_owned())
}

/// One row of a side-by-side diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// In both.
    Same(&'a str),
    /// Only on the left.
    Removed(&'a str),
    /// Only on the right.
    Added(&'a str),
}

/// The lines of `a` and `b` aligned by their longest common subsequence.
pub(crate) fn diff<'a>(a: &'a str, b: &'a str) -> Vec<Line<'a>> {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(Line::Same(a[i]));
            (i, j) = (i + 1, j + 1);
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(Line::Added(b[j]));
            j += 1;
        } else {
            out.push(Line::Removed(a[i]));
            i += 1;
        }
    }
    out
}

fn diff_table(a: &str, b: &str) -> String {
    let mut out = String::from("<table id=\"diff\" class=\"diff\">");
    for line in diff(a, b) {
        let (left, right, class) = match line {
            Line::Same(t) => (t, t, "same"),
            Line::Removed(t) => (t, "", "removed"),
            Line::Added(t) => ("", t, "added"),
        };
        out.push_str(&format!(
            "<tr class=\"{class}\"><td><pre>{}</pre></td><td><pre>{}</pre></td></tr>",
            html::escape(left),
            html::escape(right)
        ));
    }
    out.push_str("</table>");
    out
}

pub(super) async fn subject(
    State(console): State<Arc<Console>>,
    who: Operator,
    Path(subject): Path<String>,
    Query(query): Query<VersionsQuery>,
) -> Result<Response> {
    let client = registry(&console);
    let versions = client.versions(&subject).await.map_err(failed)?;
    let level = client.compatibility_level(&subject).await.map_err(failed)?;
    let latest = *versions
        .last()
        .ok_or_else(|| Error::NotFound(format!("{subject} has no version")))?;
    let b = query.b.unwrap_or(latest);
    let a = query.a.unwrap_or_else(|| {
        versions
            .iter()
            .copied()
            .filter(|v| *v < b)
            .max()
            .unwrap_or(b)
    });
    for v in [a, b] {
        if !versions.contains(&v) {
            return Err(Error::BadRequest(format!(
                "{subject} has no version {v} (it has {versions:?})"
            )));
        }
    }
    let ((id_a, schema_a), (id_b, schema_b)) = (
        client.version(&subject, a).await.map_err(failed)?,
        client.version(&subject, b).await.map_err(failed)?,
    );
    let options = |selected: i32| -> String {
        versions
            .iter()
            .map(|v| {
                format!(
                    "<option{}>{v}</option>",
                    if *v == selected { " selected" } else { "" }
                )
            })
            .collect()
    };
    let body = format!(
        "<h1>Subject {s}</h1><p>versions: {list}; compatibility level <strong id=\"level\">{level}</strong></p>\
<form method=\"get\" action=\"/schemas/{q}\"><label>version <select name=\"a\">{oa}</select></label> \
<label>against <select name=\"b\">{ob}</select></label> <button type=\"submit\">Compare</button></form>\
<p>left: version {a} (id {id_a}); right: version {b} (id {id_b})</p>{diff}\
<h2>Would this schema be accepted?</h2><form method=\"post\" action=\"/schemas/{q}/check\">{csrf}\
<textarea id=\"candidate\" name=\"schema\" rows=\"12\" cols=\"100\" required>{latest_text}</textarea>\
<p><button type=\"submit\" id=\"check\">Check against the {level} rule</button> (nothing is registered)</p></form>",
        s = html::escape(&subject),
        list = versions
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        level = html::escape(&level),
        q = html::query_escape(&subject),
        oa = options(a),
        ob = options(b),
        diff = diff_table(&pretty(&schema_a), &pretty(&schema_b)),
        csrf = who.csrf_field(),
        latest_text = html::escape(&pretty(&schema_b)),
    );
    Ok(html::page("Schemas", &who.who(), &body).into_response())
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct CheckForm {
    #[serde(default)]
    csrf: String,
    schema: String,
}

pub(super) async fn check(
    State(console): State<Arc<Console>>,
    who: Operator,
    Path(subject): Path<String>,
    Form(form): Form<CheckForm>,
) -> Result<Response> {
    who.check_csrf(&form.csrf)?;
    if serde_json::from_str::<serde_json::Value>(&form.schema).is_err() {
        return Err(Error::BadRequest(
            "the schema is not JSON (an Avro schema is a JSON document)".into(),
        ));
    }
    let client = registry(&console);
    let verdict = match client.check_compatibility(&subject, &form.schema).await {
        Ok(reasons) if reasons.is_empty() => {
            "<p id=\"verdict\" class=\"ok\">Would be accepted: compatible with the latest version.</p>".to_owned()
        }
        Ok(reasons) => format!(
            "<p id=\"verdict\" class=\"error\">Would not be accepted:</p><ul id=\"reasons\">{}</ul>",
            reasons.iter().map(|r| format!("<li>{}</li>", html::escape(r))).collect::<String>()
        ),
        Err(anineplus_schemas::registry_client::RegistryError::Rejected { code, message }) => format!(
            "<p id=\"verdict\" class=\"error\">Would not be accepted: error {code}: {}</p>",
            html::escape(&message)
        ),
        Err(e) => return Err(failed(e)),
    };
    let body = format!(
        "<h1>Subject {s}: would this schema be accepted?</h1>{verdict}<pre>{schema}</pre><p><a href=\"/schemas/{q}\">Back to {s}</a></p>",
        s = html::escape(&subject),
        schema = html::escape(&form.schema),
        q = html::query_escape(&subject),
    );
    Ok(html::page("Schemas", &who.who(), &body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_aligns_the_common_lines() {
        let d = diff("a\nb\nc\n", "a\nx\nc\nd\n");
        assert_eq!(
            d,
            vec![
                Line::Same("a"),
                Line::Added("x"),
                Line::Removed("b"),
                Line::Same("c"),
                Line::Added("d")
            ]
        );
        assert_eq!(diff("", "a"), vec![Line::Added("a")]);
        assert!(
            diff("same", "same")
                .iter()
                .all(|l| matches!(l, Line::Same(_)))
        );
    }
}
