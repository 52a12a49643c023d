//! Timing `oauth-authorize` from the browser's arrival at the callback to
//! the blob on stdout, and the fake token endpoint on its own, so the time
//! the binary adds beyond the token request can be worked out.

use super::stats::nanos;
use crate::fake::FakeProvider;
use anyhow::{bail, Context};
use reqwest::header::LOCATION;
use reqwest::redirect::Policy;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// The client id the bench registers for `oauth-authorize`. Not a secret.
pub const CLIENT_ID: &str = "vault-bench-authorize-client";
const CLIENT_SECRET: &str = "vault-bench-authorize-secret-0123456789";

/// How long one step of a run may take before the run counts as failed.
const STEP_DEADLINE: Duration = Duration::from_secs(15);

/// Environment variables that must not reach the binary: proxies would
/// send loopback requests elsewhere; a secret would override the file.
const SCRUBBED_ENV: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "OAUTH_CLIENT_SECRET",
];

/// What the runs came to.
#[derive(Debug, Default)]
pub struct Figures {
    /// Callback GET sent → blob line read on stdout, nanoseconds.
    pub callback_to_blob: Vec<u64>,
    /// Callback GET sent → its success page fully received, nanoseconds.
    pub page: Vec<u64>,
    /// One failure message per run that did not produce a blob.
    pub failures: Vec<String>,
}

/// Ports that were free a moment ago, distinct, on 127.0.0.1.
fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// Runs `bin box --no-browser` against `fake` `runs` times.
pub async fn callback_to_blob(bin: &Path, fake: &FakeProvider, runs: usize) -> Figures {
    let mut figures = Figures::default();
    let prepared = (|| -> anyhow::Result<(tempfile::TempDir, Vec<u16>)> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("client-secret"), CLIENT_SECRET)?;
        let ports = free_ports(runs)?;
        Ok((dir, ports))
    })();
    let (dir, ports) = match prepared {
        Ok(p) => p,
        Err(e) => {
            figures.failures.push(format!("set-up: {e:#}"));
            return figures;
        }
    };
    let redirects: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}/"))
        .collect();
    let redirect_refs: Vec<&str> = redirects.iter().map(String::as_str).collect();
    fake.register_client(CLIENT_ID, CLIENT_SECRET, &redirect_refs);
    let secret_file = dir.path().join("client-secret");
    for port in ports {
        match one_run(bin, fake, &secret_file, port).await {
            Ok((blob, page)) => {
                figures.callback_to_blob.push(nanos(blob));
                figures.page.push(nanos(page));
            }
            Err(e) => figures.failures.push(format!("{e:#}")),
        }
    }
    figures
}

/// One run; (callback → blob, callback → page answered).
async fn one_run(
    bin: &Path,
    fake: &FakeProvider,
    secret_file: &Path,
    port: u16,
) -> anyhow::Result<(Duration, Duration)> {
    let mut command = Command::new(bin);
    command
        .args(["box", "--no-browser", "--timeout", "30"])
        .arg("--client-secret-file")
        .arg(secret_file)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--auth-url", &fake.auth_url()])
        .args(["--token-url", &fake.token_url()])
        .env("OAUTH_CLIENT_ID", CLIENT_ID)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in SCRUBBED_ENV {
        command.env_remove(var);
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let stderr = child.stderr.take().context("no stderr")?;

    // stderr: hand over the authorize URL, keep the rest for errors.
    let auth_prefix = fake.auth_url();
    let (url_tx, url_rx) = tokio::sync::oneshot::channel::<String>();
    let stderr_task = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut url_tx = Some(url_tx);
        let mut text = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let trimmed = line.trim();
            if trimmed.starts_with(&auth_prefix) {
                if let Some(tx) = url_tx.take() {
                    let _ = tx.send(trimmed.to_string());
                }
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    // stdout: the blob line, stamped as soon as it is read.
    let blob_task = tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        let line = lines.next_line().await;
        (Instant::now(), line)
    });

    let browser = reqwest::Client::builder()
        .redirect(Policy::none())
        .no_proxy()
        .build()?;
    let outcome = async {
        let auth_url = tokio::time::timeout(STEP_DEADLINE, url_rx)
            .await
            .context("no authorize URL on stderr in time")?
            .context("oauth-authorize printed no authorize URL")?;
        let consent = browser.get(&auth_url).send().await?;
        if consent.status() != reqwest::StatusCode::FOUND {
            bail!("the fake's authorize page answered {}", consent.status());
        }
        let callback = consent
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .context("the consent redirect has no Location")?
            .to_string();
        // A browser of its own for the callback: a new connection, as a
        // browser arriving at the loopback listener makes.
        let arriving = reqwest::Client::builder()
            .redirect(Policy::none())
            .no_proxy()
            .build()?;
        let t0 = Instant::now();
        let page = arriving.get(&callback).send().await?;
        let page_status = page.status();
        page.bytes().await?;
        let page_done = Instant::now();
        if page_status != reqwest::StatusCode::OK {
            bail!("the callback page answered {page_status}");
        }
        let (t1, line) = tokio::time::timeout(STEP_DEADLINE, blob_task)
            .await
            .context("no blob on stdout in time")??;
        let line = line?.context("stdout closed without a blob")?;
        let blob: serde_json::Value =
            serde_json::from_str(&line).context("the stdout line is not JSON")?;
        if blob.get("access_token").is_none() {
            bail!("the blob has no access_token");
        }
        Ok((t1 - t0, page_done - t0))
    }
    .await;
    let status = tokio::time::timeout(STEP_DEADLINE, child.wait()).await;
    let stderr_text = tokio::time::timeout(STEP_DEADLINE, stderr_task)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    match (outcome, status) {
        (Ok(times), Ok(Ok(s))) if s.success() => Ok(times),
        (Ok(_), Ok(Ok(s))) => bail!("oauth-authorize exited with {s}: {}", stderr_text.trim()),
        (Ok(_), _) => bail!("oauth-authorize did not exit in time"),
        (Err(e), _) => Err(e.context(stderr_text.trim().to_string())),
    }
}

/// `requests` direct `grant_type=refresh_token` POSTs to the fake's token
/// endpoint, each with a refresh token seeded for it and on a new TCP
/// connection (as the binary's one exchange is); nanoseconds each, from
/// sending to the whole answer.
pub async fn token_endpoint(fake: &FakeProvider, requests: usize) -> anyhow::Result<Vec<u64>> {
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        let (_, refresh) = fake.seed_tokens(CLIENT_ID, 3600);
        let client = reqwest::Client::builder()
            .redirect(Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()?;
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ];
        let start = Instant::now();
        let response = client.post(fake.token_url()).form(&form).send().await?;
        let status = response.status();
        response.bytes().await?;
        let elapsed = start.elapsed();
        if status != reqwest::StatusCode::OK {
            bail!("the fake token endpoint answered {status}");
        }
        times.push(nanos(elapsed));
    }
    Ok(times)
}
