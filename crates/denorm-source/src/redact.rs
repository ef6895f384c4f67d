//! [`redact`]: hides every password in a text that may hold a PostgreSQL
//! connection URL or `key=value` connection string, before the text is
//! logged, shown in an error, on `/health` or in `denorm check` output.
//!
//! ```text
//!  postgres://app:s3cret@db/app              → postgres://app:***@db/app
//!  postgres://app@db/app?password=s3cret     → postgres://app@db/app?password=***
//!  host=db user=app password=s3cret          → host=db user=app password=***
//!  host=db password = 'it''s \' secret' x=1  → host=db password = *** x=1
//!  sslpassword=k                             → sslpassword=***
//! ```
//!
//! It works on any text, not only on a bare URL, so that a URL quoted
//! inside an error message (the driver's, or ours) is covered too: every
//! `scheme://user:password@` and every `…password=value` (any key ending in
//! `password`, any case, spaces around `=`, a value quoted with `'` and
//! `\'` escapes, or ending at whitespace, `&`, `#`, `;`, `"` or `,`)
//! is rewritten. It never fails and leaves text without passwords as it is.

/// What a password is replaced by.
pub const HIDDEN: &str = "***";

/// `text` with every password of a connection URL or connection string
/// replaced by `***`.
pub fn redact(text: &str) -> String {
    redact_pairs(&redact_userinfo(text))
}

/// `scheme://user:password@host…` → `scheme://user:***@host…`, for every
/// `://` in `text`.
fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The URL runs to the next whitespace or quote; its user info is
        // before the last '@' that precedes the query.
        let end = tail.find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>')).unwrap_or(tail.len());
        let url = &tail[..end];
        match userinfo_end(url).and_then(|at| url[..at].find(':').map(|colon| (colon, at))) {
            Some((colon, at)) if colon < at => {
                out.push_str(&url[..=colon]);
                out.push_str(HIDDEN);
                out.push_str(&url[at..]);
            }
            _ => out.push_str(url),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Where a URL's user info ends (its '@'): the last '@', unless that one
/// is in the query (a '?' before it with an '=' in between, as in
/// `?application_name=a@b`), then the last '@' before the query. A
/// password may hold '@', '/' and '?' unencoded and is still hidden.
fn userinfo_end(url: &str) -> Option<usize> {
    let last = url.rfind('@')?;
    let in_query = url[..last].find('?').is_some_and(|q| url[q..last].contains('='));
    if in_query {
        url[..url.find('?').unwrap_or(url.len())].rfind('@')
    } else {
        Some(last)
    }
}

/// `…password=value` → `…password=***` for every key ending in `password`.
fn redact_pairs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim_end();
        let key_start = key.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
        let is_password = key[key_start..].to_ascii_lowercase().ends_with("password");
        out.push_str(&rest[..=eq]);
        rest = &rest[eq + 1..];
        if !is_password {
            continue;
        }
        let value_start = rest.len() - rest.trim_start().len();
        out.push_str(&rest[..value_start]);
        let value = &rest[value_start..];
        let len = value_len(value);
        if len > 0 {
            out.push_str(HIDDEN);
        }
        rest = &value[len..];
    }
    out.push_str(rest);
    out
}

/// The length of a connection-string value at the start of `text`: a
/// single-quoted one with its quotes (`\'` and `''` inside it do not end
/// it), or an unquoted one up to a separator.
fn value_len(text: &str) -> usize {
    if let Some(after) = text.strip_prefix(HIDDEN) {
        if after.starts_with(|c: char| c.is_whitespace() || ":&#;\",".contains(c)) || after.is_empty() {
            return HIDDEN.len(); // redacted already: what follows is not the password
        }
    }
    let bytes = text.as_bytes();
    if bytes.first() == Some(&b'\'') {
        let mut i = 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 2,
                b'\'' => return i + 1,
                _ => i += 1,
            }
        }
        return bytes.len();
    }
    text.find(|c: char| c.is_whitespace() || matches!(c, '&' | '#' | ';' | '"' | ',')).unwrap_or(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_form_is_hidden() {
        let cases = [
            ("postgres://app:s3cret@db:5432/app", "postgres://app:***@db:5432/app"),
            ("postgresql://app:s3cret@db/app?sslmode=disable", "postgresql://app:***@db/app?sslmode=disable"),
            ("postgres://app:p@ss/w?rd@db/app", "postgres://app:***@db/app"),
            ("postgres://app:pw@db/app?application_name=a@b", "postgres://app:***@db/app?application_name=a@b"),
            ("postgres://app:s3cret@h1,h2:5433/app", "postgres://app:***@h1,h2:5433/app"),
            ("postgres://app@db/app?password=s3cret", "postgres://app@db/app?password=***"),
            (
                "postgres://db/app?user=app&password=s3cret&sslmode=off",
                "postgres://db/app?user=app&password=***&sslmode=off",
            ),
            ("postgres://db/app?PASSWORD=s3cret#frag", "postgres://db/app?PASSWORD=***#frag"),
            ("host=db user=app password=s3cret dbname=app", "host=db user=app password=*** dbname=app"),
            ("host=db password = s3cret", "host=db password = ***"),
            ("host=db password='s3 cret' port=1", "host=db password=*** port=1"),
            (r"host=db password='it\'s' port=1", "host=db password=*** port=1"),
            ("host=db password='it''s' port=1", "host=db password=*** port=1"),
            ("host=db password='unterminated", "host=db password=***"),
            ("sslpassword=k host=db", "sslpassword=*** host=db"),
            (
                "cannot connect to the source postgres://u:pw@h/db: connection refused",
                "cannot connect to the source postgres://u:***@h/db: connection refused",
            ),
            ("invalid URL \"postgres://u:pw@h/db\"", "invalid URL \"postgres://u:***@h/db\""),
            ("password=", "password="),
            // Redacted text quoted in a message: what follows stays.
            ("URL x?password=***: invalid", "URL x?password=***: invalid"),
        ];
        for (text, want) in cases {
            assert_eq!(redact(text), want, "{text}");
        }
    }

    #[test]
    fn text_without_passwords_is_unchanged() {
        for text in [
            "sqlite:///var/app.db",
            "postgres://app@db/app",
            "postgres://db/app",
            "x = 1, y=2",
            "host=db user=app",
            "SELECT a = b FROM t",
            "",
            "://",
            "a://b@c",
            "postgres://u@h/db?application_name=a:b@c",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    proptest! {
        /// Whatever surrounds it, a password never survives, and redacting
        /// is idempotent.
        #[test]
        fn a_password_never_survives(
            before in "[ a-z=&?:/@]{0,12}",
            password in "[A-Za-z0-9!$%^*()\\[\\]{}|~+-]{6,16}",
            after in "[ a-z=&?:/]{0,12}",
            form in 0..4usize,
        ) {
            let embedded = match form {
                0 => format!("postgres://user:{password}@host:5432/db"),
                1 => format!("postgres://user@host/db?password={password}"),
                2 => format!("host=h password={password} port=5"),
                _ => format!("host=h password='{password} x'"),
            };
            let text = format!("{before} {embedded} {after}");
            let redacted = redact(&text);
            prop_assert!(!redacted.contains(&password), "{redacted}");
            prop_assert_eq!(redact(&redacted), redacted.clone());
        }
    }
}
