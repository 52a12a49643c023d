//! One leg of the measurement: one transfer, one way, by one route, timed
//! and checked. A provider's legs share its fake, the connection the vault
//! imported from it and the direct route's token, so [`ProviderLegs`] holds
//! them; the untimed `sync` before a leg and the counters read around it
//! (CPU time, the daemon's `VmHWM`) are here too.

use super::direct_route::Direct;
use super::source::{Hasher, Source};
use super::vault_route::{content_path, vault_download, vault_upload};
use super::{size_label, Direction, LegCpu, Route, Timed, DOWNLOAD_ROUNDS};
use crate::bench::daemon::Daemon;
use crate::bench::machine;
use crate::fake::{FakeProvider, Style};
use crate::vault_harness::{blob, CLIENT_ID, CLIENT_SECRET};
use anyhow::{anyhow, bail};
use std::future::Future;
use std::time::{Duration, Instant};

/// How long the untimed `sync` before a transfer may take.
const SYNC_DEADLINE: Duration = Duration::from_secs(120);
/// Where each route's upload lands on the fake, and its downloads read.
const VAULT_PATH: &str = "/vault.bin";
const DIRECT_PATH: &str = "/direct.bin";

/// The order of one provider's legs: each upload once, the vault's first
/// (the downloads read what they left); then the downloads, alternating
/// routes.
pub(super) fn plan() -> Vec<(Direction, Route)> {
    let mut plan = vec![
        (Direction::Upload, Route::Vault),
        (Direction::Upload, Route::Direct),
    ];
    for _ in 0..DOWNLOAD_ROUNDS {
        plan.push((Direction::Download, Route::Vault));
        plan.push((Direction::Download, Route::Direct));
    }
    plan
}

/// What one leg moved, before it is checked.
struct Moved {
    bytes: u64,
    /// The SHA-256 of what a download received; `None` for an upload, which
    /// is checked on the fake's side.
    downloaded_sha256: Option<String>,
    /// What exactly was sent (parts, chunks…).
    how: String,
}

/// One provider's fake, imported into the vault, and what its legs share.
pub(super) struct ProviderLegs<'a> {
    runtime: &'a tokio::runtime::Runtime,
    vault: &'a Daemon,
    source: &'a Source,
    /// How long each leg may take.
    deadline: Duration,
    style: Style,
    /// The vault connection's name.
    name: &'static str,
    /// The provider's name in progress lines.
    label: &'static str,
    fake: FakeProvider,
    /// Why the vault did not take the connection, if it did not: every
    /// vault leg then fails with it.
    imported: anyhow::Result<()>,
    direct: Direct<'a>,
    /// The file the direct Box upload made, for the direct Box downloads.
    box_id: Option<String>,
}

impl<'a> ProviderLegs<'a> {
    /// Starts `style`'s fake, seeds a token and imports it into `vault`.
    pub(super) fn start(
        style: Style,
        runtime: &'a tokio::runtime::Runtime,
        vault: &'a Daemon,
        http: &'a reqwest::Client,
        source: &'a Source,
        deadline: Duration,
    ) -> ProviderLegs<'a> {
        let (name, label) = match style {
            Style::Box => ("box", "Box"),
            Style::Dropbox => ("dropbox", "Dropbox"),
        };
        let fake = FakeProvider::start(style);
        fake.register_client(CLIENT_ID, CLIENT_SECRET, &["http://127.0.0.1:53682/"]);
        // Its one "still processing" 202 per commit would add the same
        // 1 s Retry-After sleep to both routes.
        fake.set_box_commit_202s(0);
        let (access, refresh) = fake.seed_tokens(CLIENT_ID, 86_400);
        let imported = vault.import(name, &fake, &blob(&access, Some(&refresh), 86_400));
        let direct = Direct {
            http,
            api: fake.api_url(),
            upload: fake.upload_url(),
            token: access,
            source,
        };
        ProviderLegs {
            runtime,
            vault,
            source,
            deadline,
            style,
            name,
            label,
            fake,
            imported,
            direct,
            box_id: None,
        }
    }

    /// The progress line for one leg.
    pub(super) fn describe(&self, direction: Direction, route: Route) -> String {
        format!(
            "transfers: {} {} {} through {}",
            self.label,
            size_label(self.source.len),
            match direction {
                Direction::Upload => "upload",
                Direction::Download => "download",
            },
            match route {
                Route::Vault => "the vault",
                Route::Direct => "direct requests to the fake",
            }
        )
    }

    /// Makes one leg, timed, with the CPU time and the daemon's `VmHWM`
    /// read around it, and checks what arrived.
    pub(super) fn measure(&mut self, direction: Direction, route: Route) -> Result<Timed, String> {
        let pid = self.vault.pid();
        let before = CpuSample::take(pid);
        let started = Instant::now();
        let outcome = self.transfer(direction, route);
        let wall = started.elapsed();
        let cpu = CpuSample::take(pid).since(before);
        let daemon_hwm_kib = machine::status_kib(pid, "VmHWM");
        outcome
            .map(|moved| Timed {
                wall,
                bytes: moved.bytes,
                cpu,
                check: self.check(route, &moved),
                daemon_hwm_kib,
                how: moved.how,
            })
            .map_err(|e| format!("{e:#}"))
    }

    fn transfer(&mut self, direction: Direction, route: Route) -> anyhow::Result<Moved> {
        if let (Route::Vault, Err(e)) = (route, &self.imported) {
            bail!("{e:#}");
        }
        match direction {
            Direction::Upload => Ok(Moved {
                bytes: self.source.len,
                downloaded_sha256: None,
                how: self.upload(route)?,
            }),
            Direction::Download => self.download(route),
        }
    }

    /// Uploads the whole source by `route`; how it was sent.
    fn upload(&mut self, route: Route) -> anyhow::Result<String> {
        match (route, self.style) {
            (Route::Vault, _) => self.within_deadline(async {
                vault_upload(&self.vault.socket, self.name, VAULT_PATH, self.source).await?;
                Ok(format!(
                    "PUT {} with Content-Length, one connection, body read 256 KiB at a time (like token-vault put)",
                    content_path(self.name, VAULT_PATH)
                ))
            }),
            (Route::Direct, Style::Box) => {
                let (id, how) = self.within_deadline(self.direct.box_upload("direct.bin"))?;
                self.box_id = Some(id);
                Ok(how)
            }
            (Route::Direct, Style::Dropbox) => {
                self.within_deadline(self.direct.dropbox_upload(DIRECT_PATH))
            }
        }
    }

    /// Downloads what `route`'s upload left, SHA-256'd on a thread as it
    /// arrives.
    fn download(&self, route: Route) -> anyhow::Result<Moved> {
        let size = self.source.len;
        let hasher = Hasher::start(size.saturating_add(1))?;
        let received = self.within_deadline(async {
            match (route, self.style) {
                (Route::Vault, _) => {
                    vault_download(&self.vault.socket, self.name, VAULT_PATH, size, &hasher).await
                }
                (Route::Direct, Style::Box) => match &self.box_id {
                    Some(id) => self.direct.box_download(id, &hasher).await,
                    None => bail!("nothing to download: the upload failed"),
                },
                (Route::Direct, Style::Dropbox) => {
                    self.direct.dropbox_download(DIRECT_PATH, &hasher).await
                }
            }
        });
        let sha = hasher.finish()?;
        let received = received?;
        let how = match (route, self.style) {
            (Route::Vault, _) => format!(
                "GET {}, streamed and SHA-256'd on a thread",
                content_path(self.name, VAULT_PATH)
            ),
            (Route::Direct, Style::Box) => "GET /2.0/files/{id}/content, then the 302's one-time URL without the token (as the vault does)".into(),
            (Route::Direct, Style::Dropbox) => "POST files/download".into(),
        };
        Ok(Moved {
            bytes: received,
            downloaded_sha256: Some(sha),
            how,
        })
    }

    /// Runs one transfer to its end, or fails it at the deadline.
    fn within_deadline<T>(
        &self,
        transfer: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let deadline = self.deadline;
        self.runtime.block_on(async {
            tokio::time::timeout(deadline, transfer)
                .await
                .map_err(|_| anyhow!("no answer within {} s", deadline.as_secs()))?
        })
    }

    /// `Ok` when the SHA-256 and size of what arrived, a download here or an
    /// upload on the fake, are the source's.
    fn check(&self, route: Route, moved: &Moved) -> Result<(), String> {
        let (source, size, bytes) = (self.source, self.source.len, moved.bytes);
        match &moved.downloaded_sha256 {
            Some(sha) => {
                if bytes != size {
                    Err(format!("{bytes} bytes arrived, not {size}"))
                } else if *sha != source.sha256 {
                    Err(format!(
                        "SHA-256 of the bytes that arrived is {sha}, not {}",
                        source.sha256
                    ))
                } else {
                    Ok(())
                }
            }
            None => {
                let path = match route {
                    Route::Vault => VAULT_PATH,
                    Route::Direct => DIRECT_PATH,
                };
                match (self.fake.file_sha256(path), self.fake.file_size(path)) {
                    (Some(sha), Some(len)) if sha == source.sha256 && len == size => Ok(()),
                    (Some(sha), len) => Err(format!(
                        "the fake's {path} has SHA-256 {sha} and {len:?} bytes, not {} and {size}",
                        source.sha256
                    )),
                    (None, _) => Err(format!("the fake has no {path}")),
                }
            }
        }
    }
}

/// Resets `pid`'s `VmHWM` to its current RSS (Linux ≥ 4.0, same user).
pub(super) fn reset_hwm(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Flushes dirty pages, so that no transfer pays for another's writes.
pub(super) fn sync() -> Duration {
    let start = Instant::now();
    if let Ok(mut child) = std::process::Command::new("sync").spawn() {
        for _ in 0..SYNC_DEADLINE.as_millis() / 10 {
            if !matches!(child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    start.elapsed()
}

/// CPU counters at one moment.
#[derive(Clone, Copy)]
struct CpuSample {
    vault: Option<Duration>,
    own: Option<Duration>,
    fake: Option<Duration>,
    machine: Option<Duration>,
}

impl CpuSample {
    fn take(pid: u32) -> CpuSample {
        CpuSample {
            vault: machine::cpu_time(pid),
            own: machine::cpu_time(std::process::id()),
            fake: machine::own_threads_cpu_time("fake-provider"),
            machine: machine::machine_busy(),
        }
    }

    fn since(self, before: CpuSample) -> Option<LegCpu> {
        let d = |a: Option<Duration>, b: Option<Duration>| Some(a?.saturating_sub(b?));
        let fake = d(self.fake, before.fake)?;
        Some(LegCpu {
            vault: d(self.vault, before.vault)?,
            fake,
            client: d(self.own, before.own)?.saturating_sub(fake),
            machine: d(self.machine, before.machine)?,
        })
    }
}
