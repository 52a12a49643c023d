//! One run of the authorization-code flow: listener, browser (or paste-back),
//! the wait, and the exchange.
//!
//! Invariant: the listener is bound before anything sends the user to the
//! provider, and the wait ends only on the good callback, a provider error,
//! the timeout or Ctrl-C; each ending but the first is an error.

use crate::callback::{self, Callback};
use crate::exchange::{ExchangeError, TokenClient};
use crate::listener::{ListenError, Listener};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use oauth2::{CsrfToken, PkceCodeChallenge, Scope};
use ring::rand::{SecureRandom, SystemRandom};
use shared::{Provider, Secret, TokenBlob};
use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use url::Url;

/// Bytes of CSPRNG output in `state`: 256 bits, twice the usual minimum.
const STATE_BYTES: usize = 32;

/// Everything one authorization-code run needs.
pub struct CodeFlow<'a> {
    pub provider: &'a Provider,
    pub client: &'a TokenClient,
    pub scopes: &'a [String],
    pub extra_params: &'a [(String, String)],
    pub listen: SocketAddr,
    pub callback_path: String,
    pub open_browser: bool,
    pub paste_back: bool,
    pub timeout: Duration,
}

/// How a run can fail.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("the provider refused the authorization: {error}{}{}", description.as_ref().map(|d| format!(" ({d})")).unwrap_or_default(), if error == "access_denied" { ". Access was denied in the browser; run oauth-authorize again and approve the app" } else { "" })]
    Denied {
        error: String,
        description: Option<String>,
    },
    #[error("timed out after {0} s waiting for the browser to come back to the callback address. Run again with a larger --timeout, or use --no-browser and paste the final URL")]
    TimedOut(u64),
    #[error("interrupted; nothing was written")]
    Interrupted,
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    #[error("no secure random numbers available")]
    Random,
}

/// What wakes the waiting main thread.
enum Wake {
    Callback(Callback),
    Interrupted,
}

impl CodeFlow<'_> {
    pub fn run(&self) -> Result<TokenBlob, FlowError> {
        let listener = Listener::bind(self.listen)?;
        let state = random_state()?;
        let (challenge, verifier) = if self.provider.pkce {
            let (c, v) = PkceCodeChallenge::new_random_sha256();
            (Some(c), Some(Secret::new(v.secret().clone())))
        } else {
            (None, None)
        };
        let scopes = if self.scopes.is_empty() {
            &self.provider.default_scopes
        } else {
            self.scopes
        };
        let mut request = self
            .client
            .oauth()
            .authorize_url(|| CsrfToken::new(state.clone()))
            .add_scopes(scopes.iter().map(|s| Scope::new(s.clone())));
        for (k, v) in self
            .provider
            .extra_auth_params
            .iter()
            .chain(self.extra_params)
        {
            request = request.add_extra_param(k.clone(), v.clone());
        }
        if let Some(c) = challenge {
            request = request.set_pkce_challenge(c);
        }
        let (auth_url, _) = request.url();
        let code = self.wait().for_code(listener, &auth_url, &state)?;
        eprintln!("Authorization received; exchanging the code for tokens…");
        Ok(self.client.exchange_code(&code, verifier.as_ref())?)
    }

    fn wait(&self) -> Wait {
        Wait {
            listen: self.listen,
            callback_path: self.callback_path.clone(),
            open_browser: self.open_browser,
            paste_back: self.paste_back,
            timeout: self.timeout,
        }
    }
}

/// How to wait for the provider's redirect: the part of a run that
/// `oauth-authorize --bootstrap` shares, where the daemon made the URL and
/// will exchange the code.
pub struct Wait {
    pub listen: SocketAddr,
    pub callback_path: String,
    pub open_browser: bool,
    pub paste_back: bool,
    pub timeout: Duration,
}

impl Wait {
    /// Sends the user to `auth_url` (browser or printed URL) and waits on
    /// the already bound `listener` for the one callback carrying `state`;
    /// returns its code.
    pub fn for_code(
        &self,
        listener: Listener,
        auth_url: &Url,
        state: &str,
    ) -> Result<Secret, FlowError> {
        let (tx, rx) = mpsc::channel::<Wake>();
        let (found_tx, found_rx) = mpsc::channel::<Callback>();
        let forward = tx.clone();
        std::thread::spawn(move || {
            if let Ok(cb) = found_rx.recv() {
                let _ = forward.send(Wake::Callback(cb));
            }
        });
        let _server = listener.serve(self.callback_path.clone(), state.to_string(), found_tx);
        let interrupt = tx.clone();
        // Ctrl-C ends the wait cleanly; a second handler install is harmless to ignore.
        let _ = ctrlc::set_handler(move || {
            let _ = interrupt.send(Wake::Interrupted);
        });

        self.send_user(auth_url, state, tx);

        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Wake::Callback(Callback::Code(code))) => return Ok(code),
                Ok(Wake::Callback(Callback::ProviderError { error, description })) => {
                    return Err(FlowError::Denied { error, description })
                }
                Ok(Wake::Callback(Callback::Rejected(_))) => continue,
                Ok(Wake::Interrupted) => return Err(FlowError::Interrupted),
                Err(_) => return Err(FlowError::TimedOut(self.timeout.as_secs())),
            }
        }
    }

    /// Opens the browser (or prints the URL), and with `--no-browser` also
    /// reads pasted-back URLs from stdin.
    fn send_user(&self, auth_url: &Url, state: &str, wake: mpsc::Sender<Wake>) {
        if self.open_browser {
            eprintln!("Opening the browser for authorization. If it does not open, visit:\n\n    {auth_url}\n");
            let url = auth_url.to_string();
            // The browser command may block (text browsers); the wait must not.
            std::thread::spawn(move || {
                if let Err(e) = webbrowser::open(&url) {
                    eprintln!("Could not open a browser ({e}); open the URL above yourself.");
                }
            });
        } else {
            eprintln!(
                "Open this URL in a browser that can reach {} (for example through `ssh -L {port}:127.0.0.1:{port}`):\n\n    {auth_url}\n",
                self.listen,
                port = self.listen.port()
            );
        }
        if self.paste_back {
            eprintln!("Waiting. If the browser cannot reach this machine, paste here the full URL it ended on (it starts with the redirect URL), then press Enter.");
            let state = state.to_string();
            std::thread::spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    let Ok(line) = line else { break };
                    if line.trim().is_empty() {
                        continue;
                    }
                    match callback::interpret_pasted(&line, &state) {
                        Callback::Rejected(why) => {
                            eprintln!("That is not the URL from this authorization: {why}. Paste the whole URL from the browser's address bar.")
                        }
                        good => {
                            let _ = wake.send(Wake::Callback(good));
                            break;
                        }
                    }
                }
            });
        }
    }
}

/// A fresh `state`: 256 bits from the OS CSPRNG, base64url.
fn random_state() -> Result<String, FlowError> {
    let mut bytes = [0u8; STATE_BYTES];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| FlowError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn states_are_long_and_fresh() {
        let a = super::random_state().unwrap();
        let b = super::random_state().unwrap();
        assert_ne!(a, b);
        assert!(a.len() >= 43, "{a}");
    }
}
