//! Credentials out of what is shown: a URL's user part (`user:password@`) and its query
//! (`?token=…`) are replaced wherever a URL appears in a text meant for a log, an error or
//! `/health` (an HTTP client's error carries the whole URL it was given).

/// What replaces a credential.
const HIDDEN: &str = "REDACTED";

/// `text` with every URL's user part and query replaced by `REDACTED`.
pub fn urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The URL runs to the first character no URL holds unquoted.
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | ')'))
            .unwrap_or(after.len());
        let (url, tail) = after.split_at(end);
        out.push_str(&clean(url));
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// One URL after its `://`: without its user part and query.
fn clean(url: &str) -> String {
    let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
    let (authority, path) = url.split_at(authority_end);
    let host = match authority.rfind('@') {
        Some(at) => format!("{HIDDEN}@{}", &authority[at + 1..]),
        None => authority.to_string(),
    };
    let path = match path.find('?') {
        Some(q) => {
            let fragment = path[q..].find('#').map_or("", |f| &path[q + f..]);
            format!("{}?{HIDDEN}{fragment}", &path[..q])
        }
        None => path.to_string(),
    };
    host + &path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_urls_user_part_and_query_are_hidden_and_the_rest_kept() {
        assert_eq!(
            urls("error sending request for url (https://bob:s3cret@collector:4318/v1/traces?token=abc): refused"),
            "error sending request for url (https://REDACTED@collector:4318/v1/traces?REDACTED): refused"
        );
        assert_eq!(
            urls("to http://collector:4318/v1/logs and s3://bucket/prefix"),
            "to http://collector:4318/v1/logs and s3://bucket/prefix"
        );
        assert_eq!(urls("no url here"), "no url here");
    }
}
