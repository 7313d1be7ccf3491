//! Server-rendered pages: escaping, the layout (navigation, the style sheet, the little
//! polling script), and small helpers for tables and forms. No template engine, no CDN.

use axum::response::Html;

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `text` as a URL query component.
pub fn query_escape(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}\
nav{background:#1d2b3a;padding:.6em 1em}nav a{color:#fff;margin-right:1.2em;text-decoration:none}\
nav .who{float:right;color:#bcd}main{padding:1em 1.5em}table{border-collapse:collapse;margin:.5em 0}\
td,th{border:1px solid #ccd;padding:.25em .6em;text-align:left;vertical-align:top}th{background:#eef}\
.error{color:#a00}.ok{color:#070}.warn{color:#a60}code,pre{background:#f4f4f8}pre{padding:.6em;overflow:auto}\
progress{width:20em}table.diff td{padding:0 .4em}table.diff pre{margin:0;background:none}\
tr.added td:last-child{background:#e6ffe6}tr.removed td:first-child{background:#ffe6e6}form.inline{display:inline}.confirm{border:2px solid #a60;padding:1em;max-width:50em}";

/// Re-fetches every element with `data-refresh="<url>"` every few seconds and replaces its
/// content: the live parts of a page (lag, job progress).
const SCRIPT: &str = "setInterval(function(){document.querySelectorAll('[data-refresh]').forEach(function(el){\
fetch(el.dataset.refresh,{credentials:'same-origin'}).then(function(r){return r.ok?r.text():null})\
.then(function(t){if(t!==null){el.innerHTML=t;}});});},2000);";

/// A page with the navigation for a signed-in operator.
pub fn page(title: &str, who: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · AnineePlus console</title>\
<style>{STYLE}</style></head><body><nav><a href=\"/\">Pipelines</a><a href=\"/dead-letters\">Dead letters</a>\
<a href=\"/jobs\">Redrive jobs</a><a href=\"/schemas\">Schemas</a><a href=\"/sync\">Search sync</a><a href=\"/audit\">Audit</a><span class=\"who\">{w} · \
<a href=\"/sign-out\">sign out</a></span></nav><main>{body}</main><script>{SCRIPT}</script></body></html>",
        t = escape(title),
        w = escape(who),
    ))
}

/// A page without navigation (sign-in, refusals, errors).
pub fn bare(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · AnineePlus console</title>\
<style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        t = escape(title)
    ))
}

/// A hidden form field.
pub fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        escape(name),
        escape(value)
    )
}

/// Milliseconds since the epoch as UTC text.
pub fn time_ms(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(query_escape("a b/ü"), "a%20b%2F%C3%BC");
    }
}
