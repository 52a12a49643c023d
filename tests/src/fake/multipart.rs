//! A streaming `multipart/form-data` parser (RFC 7578), for Box's simple
//! uploads: the file part goes to disk as it arrives, so its size is not
//! limited by memory.
//!
//! Feed it the body chunk by chunk with [`Multipart::feed`]; it returns
//! [`Event`]s: the start of each part with its headers, the part's data (in
//! pieces), the end of each part. Call [`Multipart::finish`] at the end of
//! the body: a body without the closing delimiter is malformed.

use axum::http::HeaderMap;

/// The longest part header block accepted.
const MAX_HEADERS: usize = 16 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    Start(PartHeaders),
    Data(Vec<u8>),
    End,
}

/// What the fake needs from a part's headers.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PartHeaders {
    /// The `name` of `Content-Disposition: form-data; name=…`.
    pub name: Option<String>,
    /// The `filename`, if there is one (the file part has one).
    pub filename: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum Stage {
    Preamble,
    AfterDelimiter,
    Headers,
    Body,
    Done,
}

pub(crate) struct Multipart {
    /// `\r\n--boundary`: the delimiter, as found between parts.
    delimiter: Vec<u8>,
    stage: Stage,
    buf: Vec<u8>,
}

/// The boundary of a `multipart/form-data` content type, if it is one.
pub(crate) fn boundary(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(axum::http::header::CONTENT_TYPE)?
        .to_str()
        .ok()?;
    let mut params = value.split(';');
    let essence = params.next()?.trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    for param in params {
        let Some((k, v)) = param.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("boundary") {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            if v.is_empty() || v.len() > 70 {
                return None;
            }
            return Some(v.to_owned());
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let mut from = 0;
    while from + needle.len() <= haystack.len() {
        let at = from + haystack[from..].iter().position(|&b| b == first)?;
        if at + needle.len() > haystack.len() {
            return None;
        }
        if &haystack[at..at + needle.len()] == needle {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

impl Multipart {
    pub fn new(boundary: &str) -> Multipart {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        Multipart {
            delimiter,
            stage: Stage::Preamble,
            // The first delimiter may open the body, without a CRLF before.
            buf: b"\r\n".to_vec(),
        }
    }

    /// Parses the next chunk of the body.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, String> {
        if self.stage == Stage::Done {
            return Ok(Vec::new()); // The epilogue is ignored.
        }
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        loop {
            match self.stage {
                Stage::Preamble => match find(&self.buf, &self.delimiter) {
                    Some(at) => {
                        self.buf.drain(..at + self.delimiter.len());
                        self.stage = Stage::AfterDelimiter;
                    }
                    None => {
                        let keep = self.delimiter.len() - 1;
                        if self.buf.len() > keep {
                            self.buf.drain(..self.buf.len() - keep);
                        }
                        break;
                    }
                },
                Stage::AfterDelimiter => {
                    if self.buf.starts_with(b"--") {
                        self.stage = Stage::Done;
                        self.buf.clear();
                        break;
                    }
                    let Some(at) = find(&self.buf, b"\r\n") else {
                        if self.buf.len() > 1024 {
                            return Err("garbage after a boundary delimiter".into());
                        }
                        break;
                    };
                    if !self.buf[..at].iter().all(|&b| b == b' ' || b == b'\t') {
                        if self.buf.len() >= 2 {
                            return Err("garbage after a boundary delimiter".into());
                        }
                        break;
                    }
                    self.buf.drain(..at + 2);
                    self.stage = Stage::Headers;
                }
                Stage::Headers => {
                    let block_len = if self.buf.starts_with(b"\r\n") {
                        Some(0)
                    } else {
                        find(&self.buf, b"\r\n\r\n").map(|at| at + 2)
                    };
                    let Some(block_len) = block_len else {
                        if self.buf.len() > MAX_HEADERS {
                            return Err("part headers too long".into());
                        }
                        break;
                    };
                    let headers = parse_headers(&self.buf[..block_len])?;
                    self.buf.drain(..block_len + 2);
                    events.push(Event::Start(headers));
                    self.stage = Stage::Body;
                }
                Stage::Body => match find(&self.buf, &self.delimiter) {
                    Some(at) => {
                        if at > 0 {
                            events.push(Event::Data(self.buf[..at].to_vec()));
                        }
                        events.push(Event::End);
                        self.buf.drain(..at + self.delimiter.len());
                        self.stage = Stage::AfterDelimiter;
                    }
                    None => {
                        let keep = self.delimiter.len() - 1;
                        if self.buf.len() > keep {
                            let data: Vec<u8> = self.buf.drain(..self.buf.len() - keep).collect();
                            events.push(Event::Data(data));
                        }
                        break;
                    }
                },
                Stage::Done => break,
            }
        }
        Ok(events)
    }

    /// Checks that the body ended with the closing delimiter.
    pub fn finish(&self) -> Result<(), String> {
        if self.stage == Stage::Done {
            Ok(())
        } else {
            Err("the multipart body ends before its closing boundary".into())
        }
    }
}

/// Parses a part's header block (lines ending with CRLF).
fn parse_headers(block: &[u8]) -> Result<PartHeaders, String> {
    let text = std::str::from_utf8(block).map_err(|_| "part headers are not UTF-8")?;
    let mut headers = PartHeaders::default();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("malformed part header {line:?}"));
        };
        if name.trim().eq_ignore_ascii_case("content-disposition") {
            let mut params = split_params(value);
            if params.is_empty() || !params.remove(0).0.eq_ignore_ascii_case("form-data") {
                return Err("a part's Content-Disposition is not form-data".into());
            }
            for (k, v) in params {
                match k.to_ascii_lowercase().as_str() {
                    "name" => headers.name = v,
                    "filename" => headers.filename = v,
                    _ => {}
                }
            }
        }
    }
    Ok(headers)
}

/// Splits `form-data; name="a;b"; filename=x` into `(key, value)` pairs,
/// honouring quoted strings (with backslash escapes). The first item is the
/// disposition type, with no value.
fn split_params(value: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        // A key (or the disposition type).
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == ';' || c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        let mut val = None;
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            let mut v = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                v.push(escaped);
                            }
                        }
                        c => v.push(c),
                    }
                }
                // Skip anything up to the next ';'.
                while let Some(&c) = chars.peek() {
                    if c == ';' {
                        break;
                    }
                    chars.next();
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ';' {
                        break;
                    }
                    v.push(c);
                    chars.next();
                }
                v = v.trim().to_owned();
            }
            val = Some(v);
        }
        let key = key.trim().to_owned();
        if !key.is_empty() {
            out.push((key, val));
        }
        if chars.next().is_none() {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(body: &[u8], piece: usize) -> Result<Vec<Event>, String> {
        let mut mp = Multipart::new("XyZ");
        let mut events = Vec::new();
        for chunk in body.chunks(piece) {
            events.extend(mp.feed(chunk)?);
        }
        mp.finish()?;
        // Merge consecutive data events, for comparison.
        let mut merged: Vec<Event> = Vec::new();
        for e in events {
            match (merged.last_mut(), e) {
                (Some(Event::Data(prev)), Event::Data(more)) => prev.extend(more),
                (_, e) => merged.push(e),
            }
        }
        Ok(merged)
    }

    #[test]
    fn parses_whatever_the_chunking() {
        let body = b"preamble\r\n--XyZ\r\n\
            Content-Disposition: form-data; name=\"attributes\"\r\n\r\n\
            {\"name\":\"a;b\"}\r\n--XyZ  \r\n\
            Content-Disposition: form-data; name=\"file\"; filename=\"x \\\"y\\\".bin\"\r\n\
            Content-Type: application/octet-stream\r\n\r\n\
            \r\n--Xy\r\n--XyZ--\r\nepilogue";
        for piece in [1, 2, 3, 5, 7, 64, body.len()] {
            let events = parse_in_pieces(body, piece).expect("parses");
            assert_eq!(
                events,
                vec![
                    Event::Start(PartHeaders {
                        name: Some("attributes".into()),
                        filename: None
                    }),
                    Event::Data(b"{\"name\":\"a;b\"}".to_vec()),
                    Event::End,
                    Event::Start(PartHeaders {
                        name: Some("file".into()),
                        filename: Some("x \"y\".bin".into())
                    }),
                    Event::Data(b"\r\n--Xy".to_vec()),
                    Event::End,
                ],
                "piece size {piece}"
            );
        }
    }

    #[test]
    fn truncated_bodies_are_errors() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc";
        assert!(parse_in_pieces(body, 4).is_err());
        assert!(parse_in_pieces(b"", 4).is_err());
    }

    #[test]
    fn boundary_from_content_type() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::CONTENT_TYPE,
            "multipart/form-data; boundary=\"ab cd\""
                .parse()
                .expect("ascii"),
        );
        assert_eq!(boundary(&h).as_deref(), Some("ab cd"));
        h.insert(
            axum::http::header::CONTENT_TYPE,
            "application/json".parse().expect("ascii"),
        );
        assert_eq!(boundary(&h), None);
    }
}
