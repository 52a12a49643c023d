//! Reading what comes back from the provider: the query of the redirect to
//! the loopback listener, or the same URL pasted back by the user.
//!
//! Invariant: a code or an error is only believed when it carries the
//! `state` this run made; anything else is a [`Rejection`], which never ends
//! the wait, so a forged callback from a web page cannot abort or hijack the
//! flow.

use shared::Secret;

/// Longest provider error text we repeat to the user.
const MAX_ERROR_TEXT: usize = 300;

/// What a callback means for this run.
#[derive(Debug, PartialEq, Eq)]
pub enum Callback {
    /// The provider sent an authorization code with our state.
    Code(Secret),
    /// The provider reported an error (e.g. `access_denied`) with our state.
    ProviderError {
        error: String,
        description: Option<String>,
    },
    /// Not a callback of this run; keep waiting for the real one.
    Rejected(Rejection),
}

/// Why a callback was not believed. Never carries the values sent.
#[derive(Debug, PartialEq, Eq, Clone, Copy, thiserror::Error)]
pub enum Rejection {
    #[error("it has no `state` parameter")]
    MissingState,
    #[error("its `state` is not the one this run sent")]
    StateMismatch,
    #[error("a parameter appears more than once")]
    Duplicate,
    #[error("it carries neither `code` nor `error`")]
    NoCodeOrError,
}

/// Interprets a callback's query string (without the `?`).
pub fn interpret(query: &str, expected_state: &str) -> Callback {
    let mut state = None;
    let mut code = None;
    let mut error = None;
    let mut description = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match key.as_ref() {
            "state" => &mut state,
            "code" => &mut code,
            "error" => &mut error,
            "error_description" => &mut description,
            _ => continue,
        };
        if slot.is_some() {
            return Callback::Rejected(Rejection::Duplicate);
        }
        *slot = Some(value.into_owned());
    }
    let Some(state) = state else {
        return Callback::Rejected(Rejection::MissingState);
    };
    if !same_bytes(state.as_bytes(), expected_state.as_bytes()) {
        return Callback::Rejected(Rejection::StateMismatch);
    }
    match (code, error) {
        (_, Some(error)) => Callback::ProviderError {
            error: printable(&error),
            description: description.map(|d| printable(&d)),
        },
        (Some(code), None) if !code.is_empty() => Callback::Code(Secret::new(code)),
        _ => Callback::Rejected(Rejection::NoCodeOrError),
    }
}

/// Interprets a line the user pasted: the whole URL the browser ended on,
/// or just its query.
pub fn interpret_pasted(line: &str, expected_state: &str) -> Callback {
    let line = line.trim();
    let query = match line.split_once('?') {
        Some((_, rest)) => rest,
        None => line,
    };
    // A fragment is never part of the query.
    let query = query.split('#').next().unwrap_or_default();
    interpret(query, expected_state)
}

/// Compares without an early exit, so timing does not reveal how much of a
/// guessed `state` was right.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Provider text made safe to print: no control characters, bounded length.
fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_ERROR_TEXT)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &str = "s3cr3t-state_value";

    #[test]
    fn good_code() {
        let c = interpret(&format!("code=abc%2F1&state={STATE}&extra=1"), STATE);
        assert_eq!(c, Callback::Code(Secret::new("abc/1")));
    }

    #[test]
    fn provider_error_with_state() {
        let c = interpret(
            &format!("error=access_denied&error_description=The+user+said+no%0A&state={STATE}"),
            STATE,
        );
        assert_eq!(
            c,
            Callback::ProviderError {
                error: "access_denied".into(),
                description: Some("The user said no".into())
            }
        );
    }

    #[test]
    fn forged_callbacks_are_rejected() {
        for (query, why) in [
            ("code=x", Rejection::MissingState),
            ("code=x&state=", Rejection::StateMismatch),
            ("code=x&state=s3cr3t-state_valuf", Rejection::StateMismatch),
            ("code=x&state=s3cr3t-state_value0", Rejection::StateMismatch),
            ("error=access_denied", Rejection::MissingState),
            ("error=access_denied&state=nope", Rejection::StateMismatch),
            (
                "code=x&code=y&state=s3cr3t-state_value",
                Rejection::Duplicate,
            ),
            (
                "state=a&state=s3cr3t-state_value&code=x",
                Rejection::Duplicate,
            ),
            ("state=s3cr3t-state_value", Rejection::NoCodeOrError),
            ("state=s3cr3t-state_value&code=", Rejection::NoCodeOrError),
            ("", Rejection::MissingState),
            ("%ZZ=%%&&==", Rejection::MissingState),
        ] {
            assert_eq!(interpret(query, STATE), Callback::Rejected(why), "{query}");
        }
    }

    #[test]
    fn pasted_urls_and_queries() {
        let want = Callback::Code(Secret::new("abc"));
        for line in [
            format!("http://127.0.0.1:53682/?code=abc&state={STATE}\n"),
            format!("  http://localhost:53682/?state={STATE}&code=abc#_=_ "),
            format!("?code=abc&state={STATE}"),
            format!("code=abc&state={STATE}"),
        ] {
            assert_eq!(interpret_pasted(&line, STATE), want, "{line}");
        }
        assert_eq!(
            interpret_pasted("http://127.0.0.1:53682/?code=abc&state=other", STATE),
            Callback::Rejected(Rejection::StateMismatch)
        );
    }

    #[test]
    fn rejection_messages_do_not_echo_values() {
        let c = interpret("code=topsecretcode&state=zzz", STATE);
        let printed = format!("{c:?}");
        assert!(!printed.contains("topsecretcode"), "{printed}");
    }
}
