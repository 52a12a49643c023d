//! `put` and `get`: file content through the daemon, streamed both ways.
//!
//! Invariants: content is never held in memory whole; a download reaches
//! its final name only by a rename after every byte arrived (a failed or
//! interrupted one leaves no file behind, partial or temporary); progress
//! goes to stderr, and only to a terminal; the result line goes to stdout.

use super::files::{human_size, one_line};
use super::print_stdout;
use crate::cli::RemotePath;
use crate::client::{transfer_path, Download, VaultClient};
use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shared::api::UploadResult;
use std::io::{IsTerminal, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// `LOCAL` meaning stdin or stdout.
const STDIO: &str = "-";

/// The widest file name shown in a progress bar.
const LABEL_MAX: usize = 30;

/// `token-vault put LOCAL NAME:PATH [--quiet]`.
pub async fn run_put(
    client: &VaultClient,
    local: &Path,
    remote: &RemotePath,
    quiet: bool,
) -> anyhow::Result<()> {
    let target = put_target(&remote.path, local)?;
    let label = label(&target);
    let (file, len) = open_upload(local, quiet, &label).await?;
    let progress = progress_bar(Some(len), quiet, &label);
    let answer = client
        .upload_file::<UploadResult>(
            &transfer_path(&remote.name, "content", &target, ""),
            tokio::fs::File::from_std(file),
            len,
            progress.clone(),
        )
        .await;
    progress.finish_and_clear();
    let (_, result) =
        answer.with_context(|| format!("{}:{target} was not uploaded", remote.name))?;
    print_stdout(&upload_summary(&result, len))
}

/// The remote path of an upload: `remote` itself, or, when it ends with
/// '/', the local file's name inside it.
pub fn put_target(remote: &str, local: &Path) -> anyhow::Result<String> {
    if !remote.ends_with('/') {
        return Ok(remote.to_string());
    }
    if local == Path::new(STDIO) {
        bail!(
            "{remote} is a folder, and stdin has no name: give the file's full path, \
             e.g. NAME:{remote}data.bin"
        );
    }
    let Some(name) = local.file_name() else {
        bail!(
            "{} has no file name to use in {remote}: give the remote file's full path",
            local.display()
        );
    };
    let Some(name) = name.to_str() else {
        bail!(
            "{} is not valid UTF-8, so it cannot be a remote name: give the remote file's \
             full path",
            local.display()
        );
    };
    Ok(format!("{remote}{name}"))
}

/// The file to upload and its size. Stdin, a pipe or a device is first
/// spooled to an anonymous temporary file, since the daemon needs the size
/// up front; a regular file is read in place.
async fn open_upload(
    local: &Path,
    quiet: bool,
    label: &str,
) -> anyhow::Result<(std::fs::File, u64)> {
    if local == Path::new(STDIO) {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            eprintln!("token-vault: reading stdin until Ctrl-D");
        }
        return spool_with_progress(stdin, "stdin", quiet, label).await;
    }
    let shown = local.display().to_string();
    let meta = std::fs::metadata(local).with_context(|| format!("cannot read {shown}"))?;
    if meta.is_dir() {
        bail!("{shown} is a directory; put uploads one file");
    }
    if !meta.is_file() || meta.len() == 0 {
        // A pipe or device (`put <(cmd) …`), or a file that claims to be
        // empty (as /proc's do): its size is only known at its end.
        let file = std::fs::File::open(local).with_context(|| format!("cannot open {shown}"))?;
        return spool_with_progress(file, &shown, quiet, label).await;
    }
    let file = std::fs::File::open(local).with_context(|| format!("cannot open {shown}"))?;
    Ok((file, meta.len()))
}

/// [`spool`] on a blocking thread, with a spinner counting the bytes.
async fn spool_with_progress<R: Read + Send + 'static>(
    reader: R,
    what: &str,
    quiet: bool,
    label: &str,
) -> anyhow::Result<(std::fs::File, u64)> {
    let progress = progress_bar(None, quiet, &format!("{label} (reading {what})"));
    let counted = Counted {
        inner: reader,
        progress: progress.clone(),
    };
    let spooled = tokio::task::spawn_blocking(move || spool(counted)).await;
    progress.finish_and_clear();
    spooled
        .context("the spooling thread failed")?
        .with_context(|| {
            format!(
                "cannot copy {what} to a temporary file in {} (set TMPDIR to a directory \
                 with room for it)",
                std::env::temp_dir().display()
            )
        })
}

/// Copies `reader` to an anonymous temporary file in `$TMPDIR` (gone as
/// soon as it is closed), rewound: the file and its size.
pub fn spool(mut reader: impl Read) -> std::io::Result<(std::fs::File, u64)> {
    let mut file = tempfile::tempfile()?;
    let len = std::io::copy(&mut reader, &mut file)?;
    file.seek(SeekFrom::Start(0))?;
    Ok((file, len))
}

/// A reader that advances a progress bar.
struct Counted<R> {
    inner: R,
    progress: ProgressBar,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

/// What `put` prints.
pub fn upload_summary(result: &UploadResult, sent: u64) -> String {
    let size = human_size(result.entry.size.unwrap_or(sent));
    let what = if result.replaced {
        "new version"
    } else {
        "new file"
    };
    format!("uploaded {} ({size}, {what})\n", one_line(&result.path))
}

/// `token-vault get NAME:PATH LOCAL [--quiet]`.
pub async fn run_get(
    client: &VaultClient,
    remote: &RemotePath,
    local: &Path,
    quiet: bool,
) -> anyhow::Result<()> {
    let name = remote_basename(&remote.path)?;
    let what = format!("{}:{}", remote.name, remote.path);
    // Where it goes is settled first, so a bad LOCAL fails before the download.
    let dest = if local == Path::new(STDIO) {
        None
    } else {
        Some(local_target(local, name)?)
    };
    let mut download = client
        .download(&transfer_path(&remote.name, "content", &remote.path, ""))
        .await
        .with_context(|| format!("{what} was not downloaded"))?;
    let progress = progress_bar(download.content_length, quiet, &label(name));
    let result = match &dest {
        None => {
            let mut stdout = tokio::io::stdout();
            copy_body(&mut download, &mut stdout, &progress).await
        }
        Some(dest) => save(&mut download, dest, &progress).await,
    };
    progress.finish_and_clear();
    let received = result.with_context(|| format!("{what} was not downloaded"))?;
    match dest {
        None => Ok(()),
        Some(dest) => print_stdout(&format!(
            "downloaded {} to {} ({})\n",
            one_line(&remote.path),
            one_line(&dest.display().to_string()),
            human_size(received)
        )),
    }
}

/// The last name of a remote file path; the root, `.` and `..` have none.
pub fn remote_basename(path: &str) -> anyhow::Result<&str> {
    match path.trim_end_matches('/').rsplit('/').next() {
        Some(name) if !name.is_empty() && name != "." && name != ".." => Ok(name),
        _ => bail!("{path} is not a file path: give the remote file, e.g. NAME:/folder/file"),
    }
}

/// Where a download goes: into `local` under `name` if `local` is an
/// existing directory, else `local` itself, in a directory that exists.
/// Checked before anything is downloaded.
pub fn local_target(local: &Path, name: &str) -> anyhow::Result<PathBuf> {
    if local.is_dir() {
        return Ok(local.join(name));
    }
    let shown = local.display();
    if local.as_os_str().as_bytes().ends_with(b"/") {
        bail!("{shown} is not an existing directory");
    }
    let dir = parent_dir(local);
    if !dir.is_dir() {
        bail!(
            "cannot write {shown}: {} is not an existing directory",
            dir.display()
        );
    }
    Ok(local.to_path_buf())
}

/// The directory a path is in; `.` for a bare name.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Streams the download to a temporary file beside `dest`, then renames it
/// into place. On any failure, or Ctrl-C, the temporary file is removed and
/// `dest` is untouched. The number of bytes written.
pub async fn save(
    download: &mut Download,
    dest: &Path,
    progress: &ProgressBar,
) -> anyhow::Result<u64> {
    let shown = dest.display().to_string();
    let dir = parent_dir(dest);
    let prefix = format!(
        ".{}.",
        dest.file_name()
            .map_or_else(|| "download".into(), |n| n.to_string_lossy())
    );
    // Removed when dropped, unless persisted. Mode 0666 less the umask, as
    // any new file: tempfile's default (0600) would stick after the rename.
    let tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".part")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let tmp_shown = tmp.path().display().to_string();
    let mut out = tokio::fs::File::from_std(
        tmp.as_file()
            .try_clone()
            .with_context(|| format!("cannot open {tmp_shown}"))?,
    );
    let received = tokio::select! {
        r = copy_body(download, &mut out, progress) => r?,
        Ok(()) = tokio::signal::ctrl_c() => bail!("interrupted; {shown} was not written"),
    };
    out.sync_all()
        .await
        .with_context(|| format!("cannot write {tmp_shown}"))?;
    drop(out);
    tmp.persist(dest)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot rename {tmp_shown} to {shown}"))?;
    Ok(received)
}

/// Streams the body to `out`, chunk by chunk: the number of bytes written.
/// A write error stays an `io::Error` (a closed stdout is a broken pipe).
pub async fn copy_body<W: AsyncWrite + Unpin>(
    download: &mut Download,
    out: &mut W,
    progress: &ProgressBar,
) -> anyhow::Result<u64> {
    while let Some(chunk) = download.next_chunk().await? {
        out.write_all(&chunk).await?;
        progress.inc(chunk.len() as u64);
    }
    out.flush().await?;
    Ok(download.received())
}

/// A progress bar on stderr, or a hidden one (which draws nothing) with
/// `--quiet` or when stderr is not a terminal. With a length: bytes, rate
/// and ETA; without: a spinner with bytes and rate.
pub fn progress_bar(len: Option<u64>, quiet: bool, label: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let template = match len {
        Some(_) => {
            "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} \
             {binary_bytes_per_sec}, ETA {eta}"
        }
        None => "{spinner} {msg} {binary_bytes} {binary_bytes_per_sec}, {elapsed}",
    };
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr())
        .with_style(style)
        .with_message(label.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A file name for the progress bar: its last segment, safe, at most
/// [`LABEL_MAX`] characters.
fn label(path: &str) -> String {
    let name = one_line(
        path.trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(path),
    );
    if name.chars().count() <= LABEL_MAX {
        name
    } else {
        let cut: String = name.chars().take(LABEL_MAX - 1).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientError;
    use axum::extract::Request as AxRequest;
    use axum::http::{header, StatusCode as AxStatus};
    use axum::response::IntoResponse;
    use axum::routing::{get, put};
    use axum::{Json, Router};
    use chrono::Utc;
    use shared::api::{Entry, EntryKind, HASH_HEADER};
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    async fn serve(router: Router) -> (tempfile::TempDir, VaultClient) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        (dir, VaultClient::new(path))
    }

    /// A server on a raw socket that declares `declared` bytes, sends
    /// `body`, then closes.
    async fn short_server(declared: usize, body: Vec<u8>) -> (tempfile::TempDir, VaultClient) {
        use tokio::io::AsyncReadExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = conn.read(&mut buf).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\
                 content-length: {declared}\r\n\r\n"
            );
            conn.write_all(head.as_bytes()).await.unwrap();
            conn.write_all(&body).await.unwrap();
            conn.shutdown().await.unwrap();
        });
        (dir, VaultClient::new(path))
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn put_targets() {
        let p = |remote: &str, local: &str| put_target(remote, Path::new(local));
        assert_eq!(p("/a/f", "x/y.bin").unwrap(), "/a/f");
        assert_eq!(p("/a/", "x/y.bin").unwrap(), "/a/y.bin");
        assert_eq!(p("/", "y.bin").unwrap(), "/y.bin");
        assert_eq!(p("/a/", "/tmp/dir/").unwrap(), "/a/dir");
        assert_eq!(p("/a/f", "-").unwrap(), "/a/f");
        let err = p("/a/", "-").unwrap_err().to_string();
        assert!(err.contains("stdin has no name"), "{err}");
        assert!(p("/a/", "..").is_err());
        assert!(p("/a/", "/").is_err());
    }

    #[test]
    fn spools_a_reader() {
        let data = payload(300_000);
        let (mut file, len) = spool(&data[..]).unwrap();
        assert_eq!(len, data.len() as u64);
        assert_eq!(file.metadata().unwrap().len(), len);
        let mut back = Vec::new();
        file.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);

        let (mut file, len) = spool(std::io::empty()).unwrap();
        assert_eq!(len, 0);
        let mut back = Vec::new();
        file.read_to_end(&mut back).unwrap();
        assert!(back.is_empty());
    }

    #[test]
    fn basenames_and_targets() {
        assert_eq!(remote_basename("/a/b.txt").unwrap(), "b.txt");
        assert_eq!(remote_basename("/a/b/").unwrap(), "b");
        for bad in ["/", "", "//", "/a/..", "/."] {
            assert!(remote_basename(bad).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(local_target(dir.path(), "f").unwrap(), dir.path().join("f"));
        let file = dir.path().join("g");
        assert_eq!(local_target(&file, "f").unwrap(), file);
        assert_eq!(local_target(Path::new("g"), "f").unwrap(), Path::new("g"));
        let err = local_target(&dir.path().join("no/"), "f").unwrap_err();
        assert!(
            err.to_string().contains("not an existing directory"),
            "{err}"
        );
        let err = local_target(&dir.path().join("no/g"), "f").unwrap_err();
        assert!(
            err.to_string().contains("not an existing directory"),
            "{err}"
        );
    }

    #[test]
    fn labels_and_summaries() {
        assert_eq!(label("/a/report.pdf"), "report.pdf");
        let long = label(&format!("/{}", "x".repeat(50)));
        assert_eq!(long.chars().count(), LABEL_MAX);
        assert!(long.ends_with('…'));
        assert!(progress_bar(Some(1), true, "x").is_hidden());

        let mut r = UploadResult {
            path: "/a/f".into(),
            entry: Entry {
                name: "f".into(),
                kind: EntryKind::File,
                size: Some(12_897_485),
                modified: Some(Utc::now()),
                id: "1".into(),
                hash: None,
            },
            replaced: true,
        };
        assert_eq!(
            upload_summary(&r, 0),
            "uploaded /a/f (12.3 MiB, new version)\n"
        );
        r.replaced = false;
        r.entry.size = None;
        assert_eq!(upload_summary(&r, 10), "uploaded /a/f (10 B, new file)\n");
    }

    #[tokio::test]
    async fn downloads_to_a_file() {
        let data = payload(3 * 1024 * 1024 + 17);
        let served = data.clone();
        let router = Router::new().route(
            "/v1/connections/{name}/content",
            get(move |req: AxRequest| async move {
                assert_eq!(req.uri().query(), Some("path=%2Fa%20b%2Ff.bin"));
                ([(HASH_HEADER, "abc123")], served).into_response()
            }),
        );
        let (_sock, client) = serve(router).await;
        let out = tempfile::tempdir().unwrap();
        let remote: RemotePath = "box:/a b/f.bin".parse().unwrap();
        run_get(&client, &remote, out.path(), true).await.unwrap();
        let written = std::fs::read(out.path().join("f.bin")).unwrap();
        assert!(written == data, "the bytes differ");
        assert_eq!(leftovers(out.path()), ["f.bin"]);

        // The headers, and a file name given explicitly.
        let mut d = client
            .download(&transfer_path("box", "content", "/a b/f.bin", ""))
            .await
            .unwrap();
        assert_eq!(d.content_length, Some(data.len() as u64));
        assert_eq!(d.hash.as_deref(), Some("abc123"));
        let dest = out.path().join("other");
        let n = save(&mut d, &dest, &ProgressBar::hidden()).await.unwrap();
        assert_eq!(n, data.len() as u64);
        assert!(std::fs::read(&dest).unwrap() == data);
    }

    #[tokio::test]
    async fn a_short_download_leaves_no_file() {
        let (_sock, client) = short_server(1000, vec![7u8; 400]).await;
        let out = tempfile::tempdir().unwrap();
        let remote: RemotePath = "box:/f".parse().unwrap();
        let err = run_get(&client, &remote, &out.path().join("f"), true)
            .await
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("box:/f was not downloaded"), "{text}");
        assert!(text.contains("400 of 1000 bytes"), "{text}");
        assert!(
            leftovers(out.path()).is_empty(),
            "{:?}",
            leftovers(out.path())
        );

        // An existing file under the final name is left as it was.
        let (_sock, client) = short_server(1000, vec![7u8; 10]).await;
        let dest = out.path().join("keep");
        std::fs::write(&dest, b"old").unwrap();
        assert!(run_get(&client, &remote, &dest, true).await.is_err());
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert_eq!(leftovers(out.path()), ["keep"]);
    }

    #[tokio::test]
    async fn download_errors_are_the_daemons() {
        let router = Router::new().route(
            "/v1/connections/{name}/content",
            get(|| async {
                (
                    AxStatus::NOT_FOUND,
                    Json(serde_json::json!({"error": {"code": "not_found",
                        "message": "no file at /nope"}})),
                )
            }),
        );
        let (_sock, client) = serve(router).await;
        let out = tempfile::tempdir().unwrap();
        let remote: RemotePath = "box:/nope".parse().unwrap();
        let err = run_get(&client, &remote, out.path(), true)
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("no file at /nope"), "{err:#}");
        let api = err.downcast_ref::<ClientError>().unwrap();
        assert_eq!(api.code(), Some("not_found"));
        assert!(leftovers(out.path()).is_empty());
    }

    #[derive(Default)]
    struct Received {
        content_length: Option<String>,
        query: Option<String>,
        body: Vec<u8>,
    }

    fn upload_router(seen: Arc<Mutex<Received>>) -> Router {
        Router::new().route(
            "/v1/connections/{name}/content",
            put(move |req: AxRequest| async move {
                let query = req.uri().query().map(str::to_string);
                let content_length = req
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .map(|v| v.to_str().unwrap().to_string());
                let Ok(body) = axum::body::to_bytes(req.into_body(), usize::MAX).await else {
                    // A body broken off by the client.
                    return AxStatus::BAD_REQUEST.into_response();
                };
                let size = body.len() as u64;
                *seen.lock().unwrap() = Received {
                    content_length,
                    query: query.clone(),
                    body: body.to_vec(),
                };
                (
                    AxStatus::CREATED,
                    Json(UploadResult {
                        path: "/up/data.bin".into(),
                        entry: Entry {
                            name: "data.bin".into(),
                            kind: EntryKind::File,
                            size: Some(size),
                            modified: None,
                            id: "9".into(),
                            hash: None,
                        },
                        replaced: false,
                    }),
                )
                    .into_response()
            }),
        )
    }

    #[tokio::test]
    async fn uploads_a_file_streamed() {
        let seen = Arc::new(Mutex::new(Received::default()));
        let (_sock, client) = serve(upload_router(seen.clone())).await;
        let data = payload(2 * 1024 * 1024 + 5);
        let mut local = tempfile::NamedTempFile::new().unwrap();
        local.write_all(&data).unwrap();

        let file = tokio::fs::File::open(local.path()).await.unwrap();
        let progress = ProgressBar::hidden();
        let (status, result): (hyper::StatusCode, UploadResult) = client
            .upload_file(
                &transfer_path("box", "content", "/up/data.bin", ""),
                file,
                data.len() as u64,
                progress.clone(),
            )
            .await
            .unwrap();
        assert_eq!(status, hyper::StatusCode::CREATED);
        assert_eq!(result.entry.size, Some(data.len() as u64));
        assert_eq!(progress.position(), data.len() as u64);
        {
            let got = seen.lock().unwrap();
            assert_eq!(got.content_length, Some(data.len().to_string()));
            assert_eq!(got.query.as_deref(), Some("path=%2Fup%2Fdata.bin"));
            assert!(got.body == data, "the bytes differ");
        }

        // The command, into a folder: the local name is kept.
        let remote: RemotePath = "box:/up/".parse().unwrap();
        run_put(&client, local.path(), &remote, true).await.unwrap();
        let got = seen.lock().unwrap();
        let name = local.path().file_name().unwrap().to_str().unwrap();
        assert_eq!(
            got.query.as_deref(),
            Some(format!("path=%2Fup%2F{name}").as_str())
        );
        assert!(got.body == data, "the bytes differ");
    }

    #[tokio::test]
    async fn an_upload_of_a_file_that_changed_fails() {
        let seen = Arc::new(Mutex::new(Received::default()));
        let (_sock, client) = serve(upload_router(seen)).await;
        let mut local = tempfile::NamedTempFile::new().unwrap();
        local.write_all(&payload(1000)).unwrap();
        let path = transfer_path("box", "content", "/f", "");

        // Shorter than announced.
        let file = tokio::fs::File::open(local.path()).await.unwrap();
        let err = client
            .upload_file::<UploadResult>(&path, file, 2000, ProgressBar::hidden())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("shrank"), "{err}");

        // Longer than announced: never more than announced is sent.
        let file = tokio::fs::File::open(local.path()).await.unwrap();
        let err = client
            .upload_file::<UploadResult>(&path, file, 500, ProgressBar::hidden())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("grew"), "{err}");
    }

    #[tokio::test]
    async fn an_upload_refused_early_shows_the_daemons_error() {
        let router = Router::new().route(
            "/v1/connections/{name}/content",
            put(|| async {
                (
                    AxStatus::FORBIDDEN,
                    Json(serde_json::json!({"error": {"code": "forbidden",
                        "message": "uid 1000 may not use box"}})),
                )
            }),
        );
        let (_sock, client) = serve(router).await;
        let mut local = tempfile::NamedTempFile::new().unwrap();
        local.write_all(&payload(8 * 1024 * 1024)).unwrap();
        let remote: RemotePath = "box:/f".parse().unwrap();
        let err = run_put(&client, local.path(), &remote, true)
            .await
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("uid 1000 may not use box"),
            "{err:#}"
        );
    }

    #[tokio::test]
    async fn put_refuses_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let client = VaultClient::new(dir.path().join("none.sock"));
        let remote: RemotePath = "box:/f".parse().unwrap();
        let err = run_put(&client, dir.path(), &remote, true)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }
}
