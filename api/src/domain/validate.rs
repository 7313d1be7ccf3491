//! Input rules. Each check names the field it rejects; text is stored verbatim (never
//! escaped or rewritten), only trimmed where a name or title is concerned.

use uuid::Uuid;

use crate::{Error, Result};

/// Default page size when a client does not ask for one.
pub const DEFAULT_PAGE_SIZE: i64 = 20;

/// A trimmed, non-empty text of at most `max` characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::bad_input(format!("{field}: must not be empty")));
    }
    optional_text(field, value, max).map(|v| v.to_owned())
}

/// Text of at most `max` characters, kept as given (comment bodies, synopses).
pub fn optional_text<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str> {
    if value.chars().count() > max {
        return Err(Error::bad_input(format!(
            "{field}: at most {max} characters"
        )));
    }
    if value.chars().any(|c| c == '\0') {
        return Err(Error::bad_input(format!("{field}: must not contain NUL")));
    }
    Ok(value)
}

/// A plausible email address, lowercased.
pub fn email(value: &str) -> Result<String> {
    let value = value.trim().to_lowercase();
    let ok = value.len() <= 254
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.len() <= 64
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
                && domain
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        })
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(value)
    } else {
        Err(Error::bad_input("email: not a valid email address"))
    }
}

/// A password of 8 to 128 characters.
pub fn password(value: &str) -> Result<()> {
    let n = value.chars().count();
    if (8..=128).contains(&n) {
        Ok(())
    } else {
        Err(Error::bad_input("password: 8 to 128 characters"))
    }
}

/// A slug: 3 to 64 of `a-z`, `0-9` and `-`.
pub fn slug(value: &str) -> Result<String> {
    let value = value.trim();
    let ok = (3..=64).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(Error::bad_input("slug: 3 to 64 of a-z, 0-9 and -"))
    }
}

/// Genres: at most 20, each 1 to 40 characters, stored lowercase, deduplicated.
pub fn genres(values: &[String]) -> Result<Vec<String>> {
    if values.len() > 20 {
        return Err(Error::bad_input("genres: at most 20"));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for g in values {
        let g = text("genres", g, 40)?.to_lowercase();
        if !out.contains(&g) {
            out.push(g);
        }
    }
    Ok(out)
}

/// Alternative titles: at most 20, each 1 to 200 characters (trimmed), deduplicated in
/// their order.
pub fn alternative_titles(values: &[String]) -> Result<Vec<String>> {
    if values.len() > 20 {
        return Err(Error::bad_input("alternativeTitles: at most 20"));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for t in values {
        let t = text("alternativeTitles", t, 200)?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// A release year between 1900 and 2100.
pub fn release_year(value: Option<i32>) -> Result<Option<i32>> {
    match value {
        Some(y) if !(1900..=2100).contains(&y) => {
            Err(Error::bad_input("releaseYear: between 1900 and 2100"))
        }
        other => Ok(other),
    }
}

/// A positive integer field.
pub fn positive(field: &str, value: Option<i32>) -> Result<Option<i32>> {
    match value {
        Some(v) if v <= 0 => Err(Error::bad_input(format!("{field}: must be positive"))),
        other => Ok(other),
    }
}

/// A page size: default 20, between 1 and `max`.
pub fn page_size(first: Option<i32>, max: usize) -> Result<i64> {
    match first {
        None => Ok(DEFAULT_PAGE_SIZE.min(max as i64)),
        Some(n) if n < 1 || n as usize > max => {
            Err(Error::bad_input(format!("first: between 1 and {max}")))
        }
        Some(n) => Ok(i64::from(n)),
    }
}

/// An id: a UUID, else `NOT_FOUND` of `kind` (an id that cannot exist names nothing).
pub fn id(kind: &'static str, value: &str) -> Result<Uuid> {
    Uuid::parse_str(value).map_err(|_| Error::NotFound(kind))
}

/// An ISO date `YYYY-MM-DD`.
pub fn date(field: &str, value: Option<&str>) -> Result<Option<chrono::NaiveDate>> {
    value
        .map(|v| {
            chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| Error::bad_input(format!("{field}: a date YYYY-MM-DD")))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(email(" A@Example.org ").unwrap(), "a@example.org");
        for bad in ["", "a", "a@", "@b.c", "a@b", "a b@c.d", "a@b..c", "a@.b"] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn texts_and_pages() {
        assert!(text("title", "   ", 10).is_err());
        assert!(text("title", &"x".repeat(11), 10).is_err());
        assert_eq!(text("title", " ok ", 10).unwrap(), "ok");
        assert_eq!(page_size(None, 100).unwrap(), 20);
        assert!(page_size(Some(101), 100).is_err());
        assert!(page_size(Some(0), 100).is_err());
        assert_eq!(
            genres(&["Action".into(), "action".into()]).unwrap(),
            vec!["action"]
        );
    }

    #[test]
    fn alternative_titles_are_trimmed_deduplicated_and_bounded() {
        let given = [" Frieren ", "葬送のフリーレン", "Frieren", "frieren"].map(String::from);
        assert_eq!(
            alternative_titles(&given).unwrap(),
            vec!["Frieren", "葬送のフリーレン", "frieren"]
        );
        assert!(alternative_titles(&[" ".into()]).is_err());
        assert!(alternative_titles(&["x".repeat(201)]).is_err());
        let many: Vec<String> = (0..21).map(|i| i.to_string()).collect();
        assert!(alternative_titles(&many).is_err());
    }
}
