//! `fake-browser`: plays the user's web browser in end-to-end tests.
//!
//! Tests set `BROWSER=/path/to/fake-browser`, so the `webbrowser` crate runs
//! it with the authorize URL as an argument (it takes the last argument that
//! starts with `http`). It then does what the user would, against the fake
//! provider and the binary's loopback callback listener. `webbrowser` runs it
//! in the background with its output discarded, so the only record of what
//! it did is the log file.
//!
//! Environment:
//!
//! - `FAKE_BROWSER_MODE`:
//!   - `follow` (default): GET the URL and follow every redirect, the
//!     callback included, like a real browser.
//!   - `forge`: first attack the callback listener (a forged code with a
//!     wrong state, a forged code without state, `/favicon.ico`, `/other`),
//!     then `follow`.
//!   - `capture`: follow redirects until one points at the redirect URI's
//!     host and port, do not request it, and write that URL to the file
//!     named by `FAKE_BROWSER_CAPTURE` (the user copying the address bar of
//!     a page that did not load).
//!   - `none`: do nothing (the user never comes back).
//! - `FAKE_BROWSER_LOG`: append one line per HTTP request,
//!   `<status> <METHOD> <url-without-query>`, or `ERR <METHOD> <url>` when
//!   no answer came. Query strings are never logged: they hold codes.
//!
//! Exit status: 0, even when a status was unexpected (tests assert on the
//! log); 1 when a request to the provider itself failed at the transport
//! level; 2 on a usage error.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::header::LOCATION;
use reqwest::redirect::Policy;
use url::Url;

/// More redirects than any authorization flow needs.
const MAX_REDIRECTS: usize = 10;

fn main() -> ExitCode {
    let Some(start) = std::env::args()
        .skip(1)
        .rev()
        .find(|a| a.starts_with("http"))
    else {
        eprintln!("fake-browser: no http(s) URL among the arguments");
        return ExitCode::from(2);
    };
    let Ok(start) = Url::parse(&start) else {
        eprintln!("fake-browser: the argument is not a URL");
        return ExitCode::from(2);
    };
    let mode = std::env::var("FAKE_BROWSER_MODE").unwrap_or_else(|_| "follow".into());
    let browser = match Browser::new(&start) {
        Ok(browser) => browser,
        Err(e) => {
            eprintln!("fake-browser: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match mode.as_str() {
        "follow" => browser.follow(start),
        "forge" => browser.forge(start),
        "capture" => browser.capture(start),
        "none" => Ok(()),
        other => {
            eprintln!("fake-browser: unknown FAKE_BROWSER_MODE {other:?}");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Provider) => ExitCode::from(1),
        Err(Failure::Usage(message)) => {
            eprintln!("fake-browser: {message}");
            ExitCode::from(2)
        }
    }
}

/// Why the browser gave up.
enum Failure {
    /// A request to the provider got no HTTP answer.
    Provider,
    /// The test set the browser up wrongly.
    Usage(String),
}

struct Browser {
    http: Client,
    log: Option<PathBuf>,
    /// `(host, port)` of the provider: the authorize URL's origin.
    provider: (String, u16),
}

impl Browser {
    fn new(start: &Url) -> Result<Browser, String> {
        let http = Client::builder()
            .redirect(Policy::none())
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Browser {
            http,
            log: std::env::var_os("FAKE_BROWSER_LOG").map(PathBuf::from),
            provider: host_port(start).ok_or("the URL has no host")?,
        })
    }

    /// GETs `url`, without following redirects, logs it, and returns the
    /// status and the `Location` header (resolved against `url`). A
    /// transport error is fatal for a provider URL; for any other (the
    /// callback listener) it is logged and returned as `None`.
    fn get(&self, url: &Url) -> Result<Option<(u16, Option<Url>)>, Failure> {
        match self.http.get(url.clone()).send() {
            Ok(resp) => {
                let status = resp.status().as_u16();
                self.log(&status.to_string(), url);
                let location = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok());
                // Read the page, like a browser would, so the server sees
                // the exchange through.
                let _ = resp.bytes();
                Ok(Some((status, location)))
            }
            Err(e) => {
                self.log("ERR", url);
                eprintln!("fake-browser: GET {} failed: {e}", without_query(url));
                if host_port(url).as_ref() == Some(&self.provider) {
                    Err(Failure::Provider)
                } else {
                    Ok(None)
                }
            }
        }
    }

    fn log(&self, status: &str, url: &Url) {
        let line = format!("{status} GET {}\n", without_query(url));
        eprint!("fake-browser: {line}");
        let Some(path) = &self.log else { return };
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!("fake-browser: cannot write {}: {e}", path.display());
        }
    }

    /// Follows redirects from `url` until a page that is not a redirect.
    fn follow(&self, mut url: Url) -> Result<(), Failure> {
        for _ in 0..=MAX_REDIRECTS {
            match self.get(&url)? {
                Some((status, Some(next))) if (300..400).contains(&status) => url = next,
                _ => return Ok(()),
            }
        }
        eprintln!("fake-browser: too many redirects");
        Ok(())
    }

    /// Attacks the callback listener with requests that must all be
    /// refused, then behaves.
    fn forge(&self, start: Url) -> Result<(), Failure> {
        let redirect = redirect_uri(&start)?;
        let mut wrong_state = redirect.clone();
        wrong_state
            .query_pairs_mut()
            .append_pair("code", "forged")
            .append_pair("state", "wrong");
        let mut no_state = redirect.clone();
        no_state.query_pairs_mut().append_pair("code", "forged");
        let mut origin = redirect.clone();
        origin.set_query(None);
        origin.set_fragment(None);
        let mut attacks = vec![wrong_state, no_state];
        for path in ["/favicon.ico", "/other"] {
            let mut u = origin.clone();
            u.set_path(path);
            attacks.push(u);
        }
        for url in &attacks {
            // The expected answers (400, 400, 404, 404) are checked by the
            // test, from the log.
            self.get(url)?;
        }
        self.follow(start)
    }

    /// Follows redirects until one points at the redirect URI's host and
    /// port, and writes that URL to `FAKE_BROWSER_CAPTURE` instead of
    /// requesting it.
    fn capture(&self, start: Url) -> Result<(), Failure> {
        let target = std::env::var_os("FAKE_BROWSER_CAPTURE")
            .map(PathBuf::from)
            .ok_or_else(|| Failure::Usage("capture mode needs FAKE_BROWSER_CAPTURE".into()))?;
        let callback = host_port(&redirect_uri(&start)?)
            .ok_or_else(|| Failure::Usage("the redirect_uri has no host".into()))?;
        let mut url = start;
        for _ in 0..=MAX_REDIRECTS {
            let next = match self.get(&url)? {
                Some((status, Some(next))) if (300..400).contains(&status) => next,
                _ => {
                    eprintln!("fake-browser: the provider did not redirect back");
                    return Ok(());
                }
            };
            if host_port(&next).as_ref() == Some(&callback) {
                return write_atomically(&target, next.as_str());
            }
            url = next;
        }
        eprintln!("fake-browser: too many redirects");
        Ok(())
    }
}

/// Writes `contents` to `path` through a temporary file and a rename, so a
/// test polling for the file never reads half of it.
fn write_atomically(path: &PathBuf, contents: &str) -> Result<(), Failure> {
    let mut tmp = path.clone().into_os_string();
    tmp.push(".tmp");
    std::fs::write(&tmp, contents)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", path.display())))
}

/// The `redirect_uri` parameter of an authorize URL.
fn redirect_uri(authorize: &Url) -> Result<Url, Failure> {
    let raw = authorize
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| Failure::Usage("the authorize URL has no redirect_uri".into()))?;
    Url::parse(&raw).map_err(|e| Failure::Usage(format!("the redirect_uri is not a URL: {e}")))
}

fn host_port(url: &Url) -> Option<(String, u16)> {
    Some((url.host_str()?.to_owned(), url.port_or_known_default()?))
}

/// `url` without its query and fragment, which may hold secrets.
fn without_query(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}
