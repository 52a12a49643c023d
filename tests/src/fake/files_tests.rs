//! Tests of the fake Box and Dropbox file APIs: they must behave like the
//! real ones (shapes, errors, pagination, hashes), or the end-to-end tests
//! prove nothing.

use std::io::Write as _;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::header::{HeaderValue, CONTENT_TYPE, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::redirect::Policy;
use ring::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY, SHA256};
use serde_json::{json, Value};

use super::*;

const ID: &str = "files-client";
const SECRET: &str = "files-secret";

fn http() -> Http {
    Http::builder()
        .redirect(Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

/// A fake of `style` and a valid access token for it.
fn start(style: Style) -> (FakeProvider, String) {
    let fake = FakeProvider::start(style);
    fake.register_client(ID, SECRET, &["http://127.0.0.1:53682/"]);
    let (access, _refresh) = fake.seed_tokens(ID, 3600);
    (fake, access)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha1_hex(data: &[u8]) -> String {
    hex(digest(&SHA1_FOR_LEGACY_USE_ONLY, data).as_ref())
}

fn sha1_b64(data: &[u8]) -> String {
    STANDARD.encode(digest(&SHA1_FOR_LEGACY_USE_ONLY, data))
}

/// `(hex, base64)` of the SHA-1, computed once (ring's SHA-1 is slow in
/// unoptimised builds).
fn sha1_both(data: &[u8]) -> (String, String) {
    let d = digest(&SHA1_FOR_LEGACY_USE_ONLY, data);
    (hex(d.as_ref()), STANDARD.encode(d))
}

fn sha256_hex(data: &[u8]) -> String {
    hex(digest(&SHA256, data).as_ref())
}

/// Deterministic test bytes.
fn bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut state = 0x9E37_79B9u32 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

fn json_of(resp: Response) -> Value {
    let text = resp.text().expect("a body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

/// Asserts a status, and returns the JSON body.
fn expect_json(resp: Response, status: u16) -> Value {
    let got = resp.status().as_u16();
    let text = resp.text().expect("a body");
    assert_eq!(got, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

/// Polls `cond` until it holds, or fails after a few seconds.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ======================================================================= Box

struct BoxApi {
    fake: FakeProvider,
    token: String,
    http: Http,
}

impl BoxApi {
    fn new() -> BoxApi {
        let (fake, token) = start(Style::Box);
        BoxApi {
            fake,
            token,
            http: http(),
        }
    }

    fn api(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.fake.api_url()))
            .bearer_auth(&self.token)
    }

    fn upload(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.fake.upload_url()))
            .bearer_auth(&self.token)
    }

    fn create_folder(&self, name: &str, parent: &str) -> Response {
        self.api(reqwest::Method::POST, "/folders")
            .json(&json!({"name": name, "parent": {"id": parent}}))
            .send()
            .expect("create folder")
    }

    /// Every entry of a folder, following `next_marker`.
    fn list_all(&self, folder: &str, fields: &str) -> (Vec<Value>, usize) {
        let mut entries = Vec::new();
        let mut marker: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut query = vec![
                ("fields", fields.to_owned()),
                ("limit", "1000".to_owned()),
                ("usemarker", "true".to_owned()),
            ];
            if let Some(m) = &marker {
                query.push(("marker", m.clone()));
            }
            let page = expect_json(
                self.api(reqwest::Method::GET, &format!("/folders/{folder}/items"))
                    .query(&query)
                    .send()
                    .expect("list"),
                200,
            );
            pages += 1;
            assert_eq!(page["limit"], 1000, "the limit is echoed");
            entries.extend(page["entries"].as_array().expect("entries").iter().cloned());
            match page["next_marker"].as_str() {
                Some(m) if !m.is_empty() => marker = Some(m.to_owned()),
                _ => break,
            }
        }
        (entries, pages)
    }

    fn simple_upload(&self, path: &str, parts: &[Part<'_>]) -> Response {
        let (content_type, body) = multipart_body(parts);
        self.upload(reqwest::Method::POST, path)
            .header(CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .expect("upload")
    }
}

/// A multipart part: `(name, filename, content)`.
type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

fn multipart_body(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "----fakeBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, filename, content) in parts {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\""
        )
        .expect("write");
        if let Some(f) = filename {
            write!(body, "; filename=\"{f}\"").expect("write");
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{boundary}--\r\n").expect("write");
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn assert_box_error(resp: Response, status: u16, code: &str) -> Value {
    let body = expect_json(resp, status);
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    for field in ["message", "context_info", "help_url", "request_id"] {
        assert!(
            body.get(field).is_some(),
            "Box errors carry {field}: {body}"
        );
    }
    body
}

#[test]
fn box_folders_paginate_conflict_and_delete() {
    let b = BoxApi::new();
    let docs = expect_json(b.create_folder("Docs", "0"), 201);
    assert_eq!(docs["type"], "folder");
    assert_eq!(docs["name"], "Docs");
    assert_eq!(docs["parent"]["id"], "0");
    let docs_id = docs["id"].as_str().expect("an id").to_owned();
    assert!(docs_id.bytes().all(|c| c.is_ascii_digit()), "numeric ids");

    // Names compare case-insensitively; the conflict names the item.
    let conflict = assert_box_error(b.create_folder("DOCS", "0"), 409, "item_name_in_use");
    assert_eq!(
        conflict["context_info"]["conflicts"][0]["id"],
        docs_id.as_str()
    );
    assert_eq!(conflict["context_info"]["conflicts"][0]["type"], "folder");
    assert_box_error(b.create_folder("x", "424242"), 404, "not_found");
    assert_box_error(b.create_folder("a/b", "0"), 400, "item_name_invalid");

    b.fake.put_file("/Docs/b.txt", b"bee");
    b.fake.put_file("/Docs/A.txt", b"ay");
    b.fake.put_file("/Docs/c.txt", b"sea");
    expect_json(b.create_folder("Sub", &docs_id), 201);
    expect_json(b.create_folder("alpha", &docs_id), 201);

    b.fake.set_page_size(2);
    let (entries, pages) = b.list_all(&docs_id, "type,id,name,size,modified_at,sha1,item_status");
    assert_eq!(pages, 3, "5 entries, 2 per page");
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        ["alpha", "Sub", "A.txt", "b.txt", "c.txt"],
        "folders first"
    );
    let a = &entries[2];
    assert_eq!(a["type"], "file");
    assert_eq!(a["size"], 2);
    assert_eq!(a["sha1"], sha1_hex(b"ay"));
    assert_eq!(a["item_status"], "active");
    assert!(a["modified_at"].as_str().is_some_and(|t| t.len() >= 20));
    assert!(a.get("parent").is_none(), "fields= limits the answer");

    // Offset pagination too.
    let page = expect_json(
        b.api(reqwest::Method::GET, &format!("/folders/{docs_id}/items"))
            .query(&[("limit", "2"), ("offset", "2")])
            .send()
            .expect("list"),
        200,
    );
    assert_eq!(page["total_count"], 5);
    assert_eq!(page["entries"][0]["name"], "A.txt");

    // A file id is not a folder.
    let a_id = a["id"].as_str().expect("id");
    assert_box_error(
        b.api(reqwest::Method::GET, &format!("/folders/{a_id}/items"))
            .send()
            .expect("list"),
        404,
        "not_found",
    );

    // Delete: a file, then a non-empty folder.
    let resp = b
        .api(reqwest::Method::DELETE, &format!("/files/{a_id}"))
        .send()
        .expect("delete");
    assert_eq!(resp.status(), 204);
    assert_box_error(
        b.api(reqwest::Method::DELETE, &format!("/files/{a_id}"))
            .send()
            .expect("delete"),
        404,
        "not_found",
    );
    assert_box_error(
        b.api(reqwest::Method::DELETE, &format!("/folders/{docs_id}"))
            .send()
            .expect("delete"),
        400,
        "folder_not_empty",
    );
    assert_eq!(b.fake.paths().len(), 5);
    let resp = b
        .api(reqwest::Method::DELETE, &format!("/folders/{docs_id}"))
        .query(&[("recursive", "true")])
        .send()
        .expect("delete");
    assert_eq!(resp.status(), 204);
    assert!(b.fake.paths().is_empty(), "{:?}", b.fake.paths());
    assert_box_error(
        b.api(reqwest::Method::DELETE, &format!("/folders/{docs_id}"))
            .query(&[("recursive", "true")])
            .send()
            .expect("delete"),
        404,
        "not_found",
    );
}

#[test]
fn box_calls_need_a_valid_token() {
    let b = BoxApi::new();
    let resp = http()
        .get(format!("{}/folders/0/items", b.fake.api_url()))
        .send()
        .expect("list");
    assert_eq!(resp.status(), 401);
    let resp = http()
        .get(format!("{}/folders/0/items", b.fake.api_url()))
        .bearer_auth("box-at-unknown")
        .send()
        .expect("list");
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()[WWW_AUTHENTICATE]
        .to_str()
        .expect("ascii")
        .contains("invalid_token"));
    b.fake.expire_access_tokens();
    let (content_type, body) = multipart_body(&[
        ("attributes", None, br#"{"name":"a","parent":{"id":"0"}}"#),
        ("file", Some("a"), b"abc"),
    ]);
    let resp = b
        .upload(reqwest::Method::POST, "/files/content")
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .expect("upload");
    assert_eq!(resp.status(), 401, "expired token on an upload");
    assert!(b.fake.paths().is_empty());
}

#[test]
fn box_simple_upload_order_conflict_version_and_download() {
    let b = BoxApi::new();
    let v1 = bytes(3000, 1);
    let attrs = br#"{"name":"Report.pdf","parent":{"id":"0"},"content_modified_at":"2026-01-02T03:04:05-08:00"}"#;

    // The attributes part must come first.
    let resp = b.simple_upload(
        "/files/content",
        &[
            ("file", Some("Report.pdf"), &v1),
            ("attributes", None, attrs),
        ],
    );
    assert_box_error(resp, 400, "metadata_after_file_contents");
    assert!(b.fake.paths().is_empty(), "nothing stored");

    let created = expect_json(
        b.simple_upload(
            "/files/content",
            &[
                ("attributes", None, attrs),
                ("file", Some("Report.pdf"), &v1),
            ],
        ),
        201,
    );
    assert_eq!(created["total_count"], 1);
    let file = &created["entries"][0];
    assert_eq!(file["name"], "Report.pdf");
    assert_eq!(file["size"], 3000);
    assert_eq!(file["sha1"], sha1_hex(&v1));
    assert_eq!(file["content_modified_at"], "2026-01-02T11:04:05+00:00");
    let id = file["id"].as_str().expect("id").to_owned();
    assert_eq!(b.fake.box_versions("/report.PDF"), Some(1));
    assert_eq!(b.fake.file_sha256("/Report.pdf"), Some(sha256_hex(&v1)));

    // Same name (other case): 409 naming the existing file.
    let resp = b.simple_upload(
        "/files/content",
        &[
            (
                "attributes",
                None,
                br#"{"name":"REPORT.pdf","parent":{"id":"0"}}"#,
            ),
            ("file", Some("x"), b"other"),
        ],
    );
    let conflict = assert_box_error(resp, 409, "item_name_in_use");
    assert_eq!(conflict["context_info"]["conflicts"]["id"], id.as_str());
    assert_eq!(conflict["context_info"]["conflicts"]["type"], "file");

    // A new version, with a correct and then a wrong Content-MD5 (SHA-1).
    let v2 = bytes(5000, 2);
    let (content_type, body) = multipart_body(&[("file", Some("Report.pdf"), &v2)]);
    let resp = b
        .upload(reqwest::Method::POST, &format!("/files/{id}/content"))
        .header(CONTENT_TYPE, content_type.clone())
        .header("Content-MD5", sha1_hex(&v2))
        .body(body.clone())
        .send()
        .expect("new version");
    let updated = expect_json(resp, 201);
    assert_eq!(updated["entries"][0]["id"], id.as_str());
    assert_eq!(updated["entries"][0]["etag"], "1");
    assert_eq!(b.fake.box_versions("/Report.pdf"), Some(2));
    let resp = b
        .upload(reqwest::Method::POST, &format!("/files/{id}/content"))
        .header(CONTENT_TYPE, content_type)
        .header("Content-MD5", sha1_hex(b"not it"))
        .body(body)
        .send()
        .expect("new version");
    assert_box_error(resp, 400, "bad_digest");
    assert_eq!(b.fake.box_versions("/Report.pdf"), Some(2));
    assert_eq!(b.fake.file_sha256("/Report.pdf"), Some(sha256_hex(&v2)));

    // Download: a 302 to a one-time URL on the "download host".
    let resp = b
        .api(reqwest::Method::GET, &format!("/files/{id}/content"))
        .send()
        .expect("download");
    assert_eq!(resp.status(), 302);
    let location = resp.headers()[LOCATION].to_str().expect("ascii").to_owned();
    assert!(location.starts_with(&format!("{}/dl/", b.fake.base_url())));
    let got = http().get(&location).send().expect("dl");
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().expect("bytes").as_ref(), v2.as_slice());
    assert_eq!(
        http().get(&location).send().expect("dl").status(),
        404,
        "one time"
    );

    // With a Range.
    let resp = b
        .api(reqwest::Method::GET, &format!("/files/{id}/content"))
        .send()
        .expect("download");
    let location = resp.headers()[LOCATION].to_str().expect("ascii").to_owned();
    let got = http()
        .get(&location)
        .header("Range", "bytes=100-199")
        .send()
        .expect("dl");
    assert_eq!(got.status(), 206);
    assert_eq!(got.headers()["content-range"], "bytes 100-199/5000");
    assert_eq!(got.bytes().expect("bytes").as_ref(), &v2[100..200]);

    // Right after an upload, optionally: 202 + Retry-After once.
    b.fake.box_download_202_once(true);
    let (content_type, body) = multipart_body(&[("file", Some("f"), b"v3")]);
    expect_json(
        b.upload(reqwest::Method::POST, &format!("/files/{id}/content"))
            .header(CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .expect("v3"),
        201,
    );
    let resp = b
        .api(reqwest::Method::GET, &format!("/files/{id}/content"))
        .send()
        .expect("download");
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()[RETRY_AFTER], "1");
    let resp = b
        .api(reqwest::Method::GET, &format!("/files/{id}/content"))
        .send()
        .expect("download");
    assert_eq!(resp.status(), 302);
    assert_eq!(b.fake.counters().uploads, 3);
}

/// Uploads one part; the response.
fn put_part(
    b: &BoxApi,
    sid: &str,
    data: &[u8],
    offset: usize,
    total: usize,
    digest: Option<&str>,
) -> Response {
    let mut req = b
        .upload(
            reqwest::Method::PUT,
            &format!("/files/upload_sessions/{sid}"),
        )
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(
            "Content-Range",
            format!("bytes {offset}-{}/{total}", offset + data.len() - 1),
        );
    if let Some(d) = digest {
        req = req.header("Digest", format!("sha={d}"));
    }
    req.body(data.to_vec()).send().expect("part")
}

#[test]
fn box_chunked_upload_commit_and_abort() {
    let b = BoxApi::new();
    const PART: usize = 2 * 1024 * 1024;
    const TOTAL: usize = 21_000_000;
    b.fake.set_box_part_size(PART as u64);
    let data = bytes(TOTAL, 3);

    let small = b
        .upload(reqwest::Method::POST, "/files/upload_sessions")
        .json(&json!({"folder_id": "0", "file_size": 19_999_999, "file_name": "big.bin"}))
        .send()
        .expect("session");
    assert_box_error(small, 400, "file_size_too_small");

    let session = expect_json(
        b.upload(reqwest::Method::POST, "/files/upload_sessions")
            .json(&json!({"folder_id": "0", "file_size": TOTAL, "file_name": "big.bin"}))
            .send()
            .expect("session"),
        201,
    );
    assert_eq!(session["part_size"], PART);
    assert_eq!(session["total_parts"], TOTAL.div_ceil(PART));
    assert!(session["session_endpoints"]["commit"].as_str().is_some());
    let sid = session["id"].as_str().expect("id").to_owned();
    assert_eq!(b.fake.open_upload_sessions(), 1);

    let first = &data[..PART];
    let (first_hex, first_b64) = sha1_both(first);
    // Digest missing or wrong: 412. A bad range: 416.
    assert_box_error(
        put_part(&b, &sid, first, 0, TOTAL, None),
        412,
        "precondition_failed",
    );
    assert_box_error(
        put_part(&b, &sid, first, 0, TOTAL, Some(&sha1_b64(b"nope"))),
        412,
        "precondition_failed",
    );
    // (The range is checked before the digest: any digest will do.)
    let odd = &data[1..=PART];
    assert_eq!(
        put_part(&b, &sid, odd, 1, TOTAL, Some(&first_b64)).status(),
        416
    );
    let short = &data[..PART - 1];
    assert_eq!(
        put_part(&b, &sid, short, 0, TOTAL, Some(&first_b64)).status(),
        416
    );
    assert_eq!(
        put_part(&b, &sid, first, 0, TOTAL + 1, Some(&first_b64)).status(),
        416,
        "the total must be the session's file size"
    );

    // All parts, last first.
    let mut parts = Vec::new();
    for (i, chunk) in data.chunks(PART).enumerate().rev() {
        let (hex, b64) = if i == 0 {
            (first_hex.clone(), first_b64.clone())
        } else {
            sha1_both(chunk)
        };
        let resp = put_part(&b, &sid, chunk, i * PART, TOTAL, Some(&b64));
        let part = expect_json(resp, 200)["part"].clone();
        assert_eq!(part["offset"], i * PART);
        assert_eq!(part["size"], chunk.len());
        assert_eq!(part["sha1"], hex);
        parts.push(part);
    }
    parts.reverse();
    // The same part again is fine; other bytes at the same range are not.
    let again = put_part(&b, &sid, first, 0, TOTAL, Some(&first_b64));
    assert_eq!(expect_json(again, 200)["part"], parts[0]);
    let other = bytes(PART, 9);
    assert_box_error(
        put_part(&b, &sid, &other, 0, TOTAL, Some(&sha1_b64(&other))),
        409,
        "range_overlap",
    );

    let (whole_hex, whole_b64) = sha1_both(&data);
    let whole = format!("sha={whole_b64}");
    let commit = |parts: &[Value], digest: &str| {
        b.upload(
            reqwest::Method::POST,
            &format!("/files/upload_sessions/{sid}/commit"),
        )
        .header("Digest", digest)
        .json(
            &json!({"parts": parts, "attributes": {"content_modified_at": "2026-05-06T07:08:09Z"}}),
        )
        .send()
        .expect("commit")
    };
    assert_box_error(commit(&parts[1..], &whole), 400, "parts_mismatch");
    let processing = commit(&parts, &whole);
    assert_eq!(
        processing.status(),
        202,
        "the first commit is still processing"
    );
    assert_eq!(processing.headers()[RETRY_AFTER], "1");
    let wrong = format!("sha={}", sha1_b64(b"wrong"));
    assert_box_error(commit(&parts, &wrong), 412, "precondition_failed");
    let done = expect_json(commit(&parts, &whole), 201);
    assert_eq!(done["total_count"], 1);
    assert_eq!(done["entries"][0]["name"], "big.bin");
    assert_eq!(done["entries"][0]["size"], TOTAL);
    assert_eq!(done["entries"][0]["sha1"], whole_hex);
    assert_eq!(b.fake.open_upload_sessions(), 0);
    assert_eq!(b.fake.file_size("/big.bin"), Some(TOTAL as u64));
    assert_eq!(b.fake.file_sha256("/big.bin"), Some(sha256_hex(&data)));
    assert_eq!(b.fake.box_versions("/big.bin"), Some(1));
    assert_box_error(commit(&parts, &whole), 404, "not_found");

    // A name in use: refused at session creation.
    let conflict = b
        .upload(reqwest::Method::POST, "/files/upload_sessions")
        .json(&json!({"folder_id": "0", "file_size": TOTAL, "file_name": "BIG.bin"}))
        .send()
        .expect("session");
    assert_box_error(conflict, 409, "item_name_in_use");

    // A new-version session, aborted: its parts leave the disk.
    let on_disk = b.fake.files_on_disk();
    let id = done["entries"][0]["id"].as_str().expect("id");
    let session = expect_json(
        b.upload(
            reqwest::Method::POST,
            &format!("/files/{id}/upload_sessions"),
        )
        .json(&json!({"file_size": TOTAL}))
        .send()
        .expect("session"),
        201,
    );
    let sid = session["id"].as_str().expect("id").to_owned();
    expect_json(put_part(&b, &sid, first, 0, TOTAL, Some(&first_b64)), 200);
    assert_eq!(b.fake.files_on_disk(), on_disk + 1);
    assert_eq!(b.fake.open_upload_sessions(), 1);
    let abort = b
        .upload(
            reqwest::Method::DELETE,
            &format!("/files/upload_sessions/{sid}"),
        )
        .send()
        .expect("abort");
    assert_eq!(abort.status(), 204);
    assert_eq!(b.fake.open_upload_sessions(), 0);
    assert_eq!(b.fake.files_on_disk(), on_disk);
    assert_box_error(
        b.upload(
            reqwest::Method::DELETE,
            &format!("/files/upload_sessions/{sid}"),
        )
        .send()
        .expect("abort"),
        404,
        "not_found",
    );
    assert_eq!(b.fake.box_versions("/big.bin"), Some(1));
}

// =================================================================== Dropbox

struct DropboxApi {
    fake: FakeProvider,
    token: String,
    http: Http,
}

impl DropboxApi {
    fn new() -> DropboxApi {
        let (fake, token) = start(Style::Dropbox);
        DropboxApi {
            fake,
            token,
            http: http(),
        }
    }

    fn rpc(&self, function: &str, arg: &Value) -> Response {
        self.http
            .post(format!("{}/{function}", self.fake.api_url()))
            .bearer_auth(&self.token)
            .header(CONTENT_TYPE, "application/json")
            .body(arg.to_string())
            .send()
            .expect("rpc")
    }

    /// A content call with a raw (already ASCII-escaped) argument.
    fn content(&self, function: &str, arg: &str, body: Vec<u8>) -> RequestBuilder {
        self.http
            .post(format!("{}/{function}", self.fake.upload_url()))
            .bearer_auth(&self.token)
            .header("Dropbox-API-Arg", arg)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body)
    }

    fn upload(&self, arg: &Value, body: &[u8]) -> Response {
        self.content("files/upload", &header_json(arg), body.to_vec())
            .send()
            .expect("upload")
    }
}

/// `arg` as JSON fit for an HTTP header, as a client must send it: every
/// code point from U+007F up as `\uXXXX` (UTF-16 surrogate pairs above
/// U+FFFF).
fn header_json(arg: &Value) -> String {
    let mut out = String::new();
    for c in arg.to_string().chars() {
        if c.is_ascii() && c != '\x7f' {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// Asserts a 409 with `error_summary` starting with `summary`.
fn assert_dropbox_409(resp: Response, summary: &str) -> Value {
    let body = expect_json(resp, 409);
    let got = body["error_summary"].as_str().unwrap_or("");
    assert!(
        got.starts_with(&format!("{summary}/")),
        "error_summary {got:?} is not {summary:?}: {body}"
    );
    body
}

fn assert_plain_400(resp: Response) -> String {
    assert_eq!(resp.status(), 400);
    let ct = resp.headers()[CONTENT_TYPE]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    resp.text().expect("text")
}

/// Dropbox's content hash, computed independently.
fn content_hash(data: &[u8]) -> String {
    let mut concatenated = Vec::new();
    for block in data.chunks(4 * 1024 * 1024) {
        concatenated.extend_from_slice(digest(&SHA256, block).as_ref());
    }
    sha256_hex(&concatenated)
}

#[test]
fn dropbox_folders_list_continue_and_delete() {
    let d = DropboxApi::new();
    let made = expect_json(
        d.rpc(
            "files/create_folder_v2",
            &json!({"path": "/Photos/2026", "autorename": false}),
        ),
        200,
    );
    assert_eq!(made["metadata"][".tag"], "folder");
    assert_eq!(made["metadata"]["path_display"], "/Photos/2026");
    assert_eq!(made["metadata"]["path_lower"], "/photos/2026");
    assert!(made["metadata"]["id"]
        .as_str()
        .is_some_and(|i| i.starts_with("id:")));
    assert_eq!(
        d.fake.paths(),
        ["/Photos/", "/Photos/2026/"],
        "parents created"
    );

    let body = assert_dropbox_409(
        d.rpc("files/create_folder_v2", &json!({"path": "/photos/2026"})),
        "path/conflict/folder",
    );
    assert_eq!(
        body["error"],
        json!({".tag": "path", "path": {".tag": "conflict", "conflict": {".tag": "folder"}}})
    );
    d.fake.put_file("/Photos/a.jpg", b"jpeg");
    assert_dropbox_409(
        d.rpc("files/create_folder_v2", &json!({"path": "/Photos/A.JPG"})),
        "path/conflict/file",
    );
    let renamed = expect_json(
        d.rpc(
            "files/create_folder_v2",
            &json!({"path": "/Photos/2026", "autorename": true}),
        ),
        200,
    );
    assert_eq!(renamed["metadata"]["name"], "2026 (1)");

    for i in 0..5 {
        d.fake
            .put_file(&format!("/Photos/p{i}.jpg"), &bytes(10 + i, i as u8));
    }
    d.fake.set_page_size(3);
    let mut page = expect_json(
        d.rpc(
            "files/list_folder",
            &json!({"path": "/photos", "recursive": false, "limit": 1000}),
        ),
        200,
    );
    let mut entries = Vec::new();
    let mut pages = 1;
    loop {
        entries.extend(page["entries"].as_array().expect("entries").iter().cloned());
        if page["has_more"] != true {
            break;
        }
        page = expect_json(
            d.rpc(
                "files/list_folder/continue",
                &json!({"cursor": page["cursor"]}),
            ),
            200,
        );
        pages += 1;
    }
    assert_eq!(pages, 3, "8 entries, 3 per page");
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        ["2026", "2026 (1)", "a.jpg", "p0.jpg", "p1.jpg", "p2.jpg", "p3.jpg", "p4.jpg"]
    );
    let folder = &entries[0];
    assert_eq!(folder[".tag"], "folder");
    for absent in ["size", "content_hash", "rev", "server_modified"] {
        assert!(folder.get(absent).is_none(), "folders have no {absent}");
    }
    let file = &entries[3];
    assert_eq!(file[".tag"], "file");
    assert_eq!(file["size"], 10);
    assert_eq!(file["content_hash"], content_hash(&bytes(10, 0)));
    assert_eq!(file["path_display"], "/Photos/p0.jpg");
    assert!(file["rev"].as_str().is_some_and(|r| r.len() >= 9));
    assert!(file["server_modified"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    // The root is "", never "/".
    let root = expect_json(d.rpc("files/list_folder", &json!({"path": ""})), 200);
    assert_eq!(root["entries"][0]["name"], "Photos");
    assert_plain_400(d.rpc("files/list_folder", &json!({"path": "/"})));
    assert_plain_400(d.rpc("files/list_folder", &json!({"path": "no-slash"})));
    let missing = assert_dropbox_409(
        d.rpc("files/list_folder", &json!({"path": "/nope"})),
        "path/not_found",
    );
    assert_eq!(
        missing["error"],
        json!({".tag": "path", "path": {".tag": "not_found"}})
    );

    let gone = expect_json(d.rpc("files/delete_v2", &json!({"path": "/PHOTOS"})), 200);
    assert_eq!(gone["metadata"]["path_display"], "/Photos");
    assert!(d.fake.paths().is_empty(), "recursive: {:?}", d.fake.paths());
    assert_dropbox_409(
        d.rpc("files/delete_v2", &json!({"path": "/Photos"})),
        "path_lookup/not_found",
    );
}

#[test]
fn dropbox_upload_modes_download_and_ascii_args() {
    let d = DropboxApi::new();
    let v1 = bytes(1000, 1);
    // "/Docs/é 🎉.txt", escaped as a client must: \u00e9 and a surrogate pair.
    let arg =
        r#"{"path":"/Docs/\u00e9 \ud83c\udf89.txt","mode":"add","autorename":false,"mute":false}"#;
    let made = expect_json(
        d.content("files/upload", arg, v1.clone())
            .send()
            .expect("upload"),
        200,
    );
    assert_eq!(made["name"], "é 🎉.txt");
    assert_eq!(made["path_display"], "/Docs/é 🎉.txt");
    assert_eq!(made["size"], 1000);
    assert_eq!(made["content_hash"], content_hash(&v1));
    assert_eq!(d.fake.paths(), ["/Docs/", "/Docs/é 🎉.txt"]);
    assert_eq!(d.fake.file_sha256("/docs/É 🎉.TXT"), Some(sha256_hex(&v1)));
    let rev1 = made["rev"].as_str().expect("rev").to_owned();

    // The same arg with raw UTF-8 in the header: refused.
    let raw = HeaderValue::from_bytes(r#"{"path":"/Docs/é.txt","mode":"add"}"#.as_bytes())
        .expect("obs-text is a valid header value");
    let resp = d
        .http
        .post(format!("{}/files/upload", d.fake.upload_url()))
        .bearer_auth(&d.token)
        .header("Dropbox-API-Arg", raw)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(b"x".to_vec())
        .send()
        .expect("upload");
    assert_plain_400(resp);
    assert_plain_400(
        d.content("files/upload", "{not json", b"x".to_vec())
            .send()
            .expect("upload"),
    );
    let resp = d
        .http
        .post(format!("{}/files/upload", d.fake.upload_url()))
        .bearer_auth(&d.token)
        .header("Dropbox-API-Arg", r#"{"path":"/j"}"#)
        .header(CONTENT_TYPE, "application/json")
        .body(b"x".to_vec())
        .send()
        .expect("upload");
    assert!(assert_plain_400(resp).contains("Content-Type"));
    assert_eq!(d.fake.paths().len(), 2, "nothing stored");

    // add onto different bytes: conflict; onto the same bytes: no-op.
    let v2 = bytes(2000, 2);
    let conflict = assert_dropbox_409(
        d.upload(&json!({"path": "/docs/é 🎉.txt", "mode": "add"}), &v2),
        "path/conflict/file",
    );
    assert_eq!(conflict["error"][".tag"], "path");
    assert_eq!(
        conflict["error"]["reason"],
        json!({".tag": "conflict", "conflict": {".tag": "file"}})
    );
    // The refused bytes wait in a closed session that `finish` can commit
    // elsewhere without sending them again.
    let kept = conflict["error"]["upload_session_id"]
        .as_str()
        .expect("upload_session_id");
    let arg = json!({
        "cursor": {"session_id": kept, "offset": v2.len()},
        "commit": {"path": "/docs/kept.txt"},
    });
    let finished = expect_json(
        d.content("files/upload_session/finish", &arg.to_string(), Vec::new())
            .send()
            .expect("finish"),
        200,
    );
    assert_eq!(finished["size"], v2.len());
    assert_eq!(d.fake.file_sha256("/docs/kept.txt"), Some(sha256_hex(&v2)));
    assert_eq!(d.fake.open_upload_sessions(), 0);
    let same = expect_json(
        d.upload(
            &json!({"path": "/docs/é 🎉.txt", "mode": {".tag": "add"}}),
            &v1,
        ),
        200,
    );
    assert_eq!(same["rev"], rev1.as_str());
    assert_eq!(d.fake.box_versions("/Docs/é 🎉.txt"), Some(1));
    assert_dropbox_409(
        d.upload(
            &json!({"path": "/docs/é 🎉.txt", "mode": "add", "strict_conflict": true}),
            &v1,
        ),
        "path/conflict/file",
    );

    // overwrite; update with a stale rev; update with the current one.
    let over = expect_json(
        d.upload(&json!({"path": "/Docs/é 🎉.txt", "mode": "overwrite"}), &v2),
        200,
    );
    assert_ne!(over["rev"], rev1.as_str());
    assert_eq!(d.fake.box_versions("/Docs/é 🎉.txt"), Some(2));
    let v3 = bytes(30, 3);
    assert_dropbox_409(
        d.upload(
            &json!({"path": "/Docs/é 🎉.txt", "mode": {".tag": "update", "update": rev1}}),
            &v3,
        ),
        "path/conflict/file",
    );
    expect_json(
        d.upload(
            &json!({"path": "/Docs/é 🎉.txt", "mode": {".tag": "update", "update": over["rev"]}}),
            &v3,
        ),
        200,
    );
    assert_eq!(d.fake.file_sha256("/Docs/é 🎉.txt"), Some(sha256_hex(&v3)));
    // Onto a folder, or under a file.
    assert_dropbox_409(
        d.upload(&json!({"path": "/docs", "mode": "overwrite"}), b"x"),
        "path/conflict/folder",
    );
    assert_dropbox_409(
        d.upload(&json!({"path": "/Docs/é 🎉.txt/x", "mode": "add"}), b"x"),
        "path/conflict/file_ancestor",
    );

    // Download: bytes in the body, metadata in an ASCII header.
    let arg = r#"{"path":"/docs/\u00c9 \ud83c\udf89.TXT"}"#;
    let resp = d
        .content("files/download", arg, Vec::new())
        .send()
        .expect("download");
    assert_eq!(resp.status(), 200);
    let result = resp.headers()["dropbox-api-result"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(
        result.contains("\\u00e9") && result.contains("\\ud83c\\udf89"),
        "{result}"
    );
    let meta: Value = serde_json::from_str(&result).expect("JSON");
    assert_eq!(meta["name"], "é 🎉.txt");
    assert_eq!(meta["size"], 30);
    assert_eq!(resp.bytes().expect("bytes").as_ref(), v3.as_slice());
    let resp = d
        .content("files/download", arg, Vec::new())
        .header("Range", "bytes=-10")
        .send()
        .expect("download");
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().expect("bytes").as_ref(), &v3[20..]);
    assert_dropbox_409(
        d.content("files/download", r#"{"path":"/missing"}"#, Vec::new())
            .send()
            .expect("download"),
        "path/not_found",
    );
    assert_dropbox_409(
        d.content("files/download", r#"{"path":"/Docs"}"#, Vec::new())
            .send()
            .expect("download"),
        "path/not_file",
    );
    assert_eq!(d.fake.counters().downloads, 2);
}

#[test]
fn dropbox_content_hash_vectors() {
    let d = DropboxApi::new();
    let empty = expect_json(d.upload(&json!({"path": "/empty"}), b""), 200);
    assert_eq!(
        empty["content_hash"],
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let five = bytes(5 * 1000 * 1000, 5);
    let first = digest(&SHA256, &five[..4 * 1024 * 1024]);
    let second = digest(&SHA256, &five[4 * 1024 * 1024..]);
    let mut both = first.as_ref().to_vec();
    both.extend_from_slice(second.as_ref());
    let made = expect_json(d.upload(&json!({"path": "/five"}), &five), 200);
    assert_eq!(made["content_hash"], sha256_hex(&both));
    assert_eq!(d.fake.file_size("/five"), Some(5_000_000));
    // A content_hash argument that does not match is refused.
    assert_dropbox_409(
        d.upload(
            &json!({"path": "/h", "content_hash": "00".repeat(32)}),
            b"abc",
        ),
        "content_hash_mismatch",
    );
    expect_json(
        d.upload(
            &json!({"path": "/h", "content_hash": content_hash(b"abc")}),
            b"abc",
        ),
        200,
    );
}

#[test]
fn dropbox_upload_session_with_incorrect_offset() {
    let d = DropboxApi::new();
    let data = bytes(3 * 1024 * 1024 + 17, 7);
    let (a, rest) = data.split_at(1024 * 1024);
    let (b, c) = rest.split_at(1024 * 1024);
    let started = expect_json(
        d.content(
            "files/upload_session/start",
            r#"{"close":false}"#,
            a.to_vec(),
        )
        .send()
        .expect("start"),
        200,
    );
    let sid = started["session_id"].as_str().expect("session").to_owned();
    assert_eq!(d.fake.open_upload_sessions(), 1);

    let append = |offset: usize, chunk: &[u8]| {
        let arg = json!({"cursor": {"session_id": sid, "offset": offset}, "close": false});
        d.content(
            "files/upload_session/append_v2",
            &arg.to_string(),
            chunk.to_vec(),
        )
        .send()
        .expect("append")
    };
    let wrong = assert_dropbox_409(append(5, b), "incorrect_offset");
    assert_eq!(
        wrong["error"],
        json!({".tag": "incorrect_offset", "correct_offset": a.len()})
    );
    let ok = append(a.len(), b);
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().expect("body"), "null");
    // A retry of the same append: the offset moved on.
    assert_dropbox_409(append(a.len(), b), "incorrect_offset");

    let finish = |offset: usize, body: &[u8]| {
        let arg = json!({
            "cursor": {"session_id": sid, "offset": offset},
            "commit": {"path": "/Big/File.bin", "mode": "add", "autorename": false, "mute": false},
        });
        d.content(
            "files/upload_session/finish",
            &arg.to_string(),
            body.to_vec(),
        )
        .send()
        .expect("finish")
    };
    let wrong = assert_dropbox_409(finish(a.len(), c), "lookup_failed/incorrect_offset");
    assert_eq!(
        wrong["error"]["lookup_failed"],
        json!({".tag": "incorrect_offset", "correct_offset": a.len() + b.len()})
    );
    // The last chunk rides with the finish.
    let done = expect_json(finish(a.len() + b.len(), c), 200);
    assert_eq!(done["path_display"], "/Big/File.bin");
    assert_eq!(done["size"], data.len());
    assert_eq!(done["content_hash"], content_hash(&data));
    assert_eq!(d.fake.file_sha256("/big/file.bin"), Some(sha256_hex(&data)));
    assert_eq!(d.fake.open_upload_sessions(), 0);
    assert_dropbox_409(finish(data.len(), b""), "lookup_failed/not_found");
    assert_dropbox_409(append(0, b"x"), "not_found");
    assert_eq!(d.fake.counters().uploads, 1);
}

// =========================================================== broken bodies

/// Sends the head of a request that announces `announced` body bytes, then
/// `sent` of them; waits until the fake is streaming the body to disk; then
/// drops the connection.
fn send_and_break_off(fake: &FakeProvider, head: &str, sent: &[u8], announced: usize) {
    let before = fake.files_on_disk();
    let mut stream = std::net::TcpStream::connect(fake.base_url().trim_start_matches("http://"))
        .expect("connect");
    write!(
        stream,
        "{head}Content-Length: {announced}\r\nConnection: close\r\n\r\n"
    )
    .expect("head");
    stream.write_all(sent).expect("part of the body");
    stream.flush().expect("flush");
    wait_for("the upload to reach the disk", || {
        fake.files_on_disk() > before
    });
    drop(stream);
    wait_for("the partial upload to be dropped", || {
        fake.files_on_disk() == before
    });
}

#[test]
fn a_body_that_breaks_off_stores_nothing() {
    // Dropbox upload.
    let (fake, token) = start(Style::Dropbox);
    let head = format!(
        "POST /content/2/files/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Dropbox-API-Arg: {{\"path\":\"/partial.bin\",\"mode\":\"add\"}}\r\n\
         Content-Type: application/octet-stream\r\n"
    );
    send_and_break_off(&fake, &head, &bytes(300_000, 1), 10_000_000);
    assert!(fake.paths().is_empty(), "{:?}", fake.paths());
    assert_eq!(fake.counters().uploads, 0);

    // Dropbox session append: the session keeps its offset.
    let d = DropboxApi {
        fake,
        token,
        http: http(),
    };
    let sid = expect_json(
        d.content("files/upload_session/start", "{}", b"abc".to_vec())
            .send()
            .expect("start"),
        200,
    )["session_id"]
        .as_str()
        .expect("sid")
        .to_owned();
    let head = format!(
        "POST /content/2/files/upload_session/append_v2 HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/octet-stream\r\n\
         Dropbox-API-Arg: {{\"cursor\":{{\"session_id\":\"{sid}\",\"offset\":3}}}}\r\n",
        d.token
    );
    send_and_break_off(&d.fake, &head, &bytes(200_000, 2), 5_000_000);
    let arg = json!({"cursor": {"session_id": sid, "offset": 4}});
    let body = assert_dropbox_409(
        d.content(
            "files/upload_session/append_v2",
            &arg.to_string(),
            b"d".to_vec(),
        )
        .send()
        .expect("append"),
        "incorrect_offset",
    );
    assert_eq!(body["error"]["correct_offset"], 3);

    // Box simple upload and chunked part.
    let b = BoxApi::new();
    let (content_type, body) = multipart_body(&[
        (
            "attributes",
            None,
            br#"{"name":"partial.bin","parent":{"id":"0"}}"#,
        ),
        ("file", Some("partial.bin"), &bytes(400_000, 3)),
    ]);
    let head = format!(
        "POST /api/2.0/files/content HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: {content_type}\r\n",
        b.token
    );
    send_and_break_off(
        &b.fake,
        &head,
        &body[..body.len() - 100],
        body.len() + 5_000_000,
    );
    assert!(b.fake.paths().is_empty(), "{:?}", b.fake.paths());

    b.fake.set_box_part_size(1024 * 1024);
    let session = expect_json(
        b.upload(reqwest::Method::POST, "/files/upload_sessions")
            .json(&json!({"folder_id": "0", "file_size": 20_000_000, "file_name": "p.bin"}))
            .send()
            .expect("session"),
        201,
    );
    let sid = session["id"].as_str().expect("sid").to_owned();
    let part = bytes(1024 * 1024, 4);
    let head = format!(
        "PUT /api/2.0/files/upload_sessions/{sid} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Range: bytes 0-1048575/20000000\r\nDigest: sha={}\r\n",
        b.token,
        sha1_b64(&part)
    );
    send_and_break_off(&b.fake, &head, &part[..500_000], part.len());
    let parts = expect_json(
        b.upload(
            reqwest::Method::GET,
            &format!("/files/upload_sessions/{sid}/parts"),
        )
        .send()
        .expect("parts"),
        200,
    );
    assert_eq!(parts["total_count"], 0, "{parts}");
}

// ============================================================ fault injection

#[test]
fn box_api_faults() {
    let b = BoxApi::new();
    b.fake.inject_api_fault(
        "/folders/",
        ApiFault::TooManyRequests {
            retry_after_secs: 7,
        },
    );
    b.fake.inject_api_fault("", ApiFault::Unauthorized);
    assert_eq!(b.fake.pending_api_faults(), 2);
    let before = b.fake.api_requests();

    // A request to /folders (no trailing slash) skips the first fault and
    // takes the second.
    let resp = b.create_folder("f", "0");
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key(WWW_AUTHENTICATE));
    let resp = b
        .api(reqwest::Method::GET, "/folders/0/items")
        .send()
        .expect("list");
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()[RETRY_AFTER], "7");
    assert_box_error(resp, 429, "rate_limit_exceeded");
    assert_eq!(b.fake.pending_api_faults(), 0);
    expect_json(b.create_folder("f", "0"), 201);

    // A fault on an upload: the body is consumed, the answer arrives.
    b.fake
        .inject_api_fault("/files/content", ApiFault::ServerError);
    let big = bytes(3_000_000, 1);
    let resp = b.simple_upload(
        "/files/content",
        &[
            ("attributes", None, br#"{"name":"x","parent":{"id":"0"}}"#),
            ("file", Some("x"), &big),
        ],
    );
    assert_eq!(resp.status(), 500);
    assert_eq!(b.fake.paths(), ["/f/"]);
    assert_eq!(b.fake.api_requests(), before + 4);
    assert_eq!(b.fake.counters().api_faults, 3);
    // Tokens stay valid after an injected 401.
    expect_json(
        b.api(reqwest::Method::GET, "/folders/0/items")
            .send()
            .expect("list"),
        200,
    );
}

#[test]
fn dropbox_api_faults() {
    let d = DropboxApi::new();
    d.fake.inject_api_fault(
        "files/upload",
        ApiFault::TooManyRequests {
            retry_after_secs: 2,
        },
    );
    d.fake
        .inject_api_fault("list_folder", ApiFault::Unauthorized);
    let resp = d.upload(&json!({"path": "/a"}), &bytes(100_000, 1));
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()[RETRY_AFTER], "2");
    let body = json_of(resp);
    assert_eq!(body["error"]["reason"][".tag"], "too_many_requests");
    assert_eq!(body["error"]["retry_after"], 2);
    assert!(d.fake.paths().is_empty());
    let resp = d.rpc("files/list_folder", &json!({"path": ""}));
    let body = expect_json(resp, 401);
    assert_eq!(body["error"][".tag"], "expired_access_token");
    expect_json(d.rpc("files/list_folder", &json!({"path": ""})), 200);
    expect_json(d.upload(&json!({"path": "/a"}), b"a"), 200);
    // Real token problems give the same shapes.
    d.fake.expire_access_tokens();
    let body = expect_json(d.rpc("files/list_folder", &json!({"path": ""})), 401);
    assert_eq!(body["error_summary"], "expired_access_token/..");
}
