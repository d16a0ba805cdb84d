//! Block blobs in Azure Blob Storage, written and read through SAS URLs.
//!
//! A file of at most [`BLOCK_SIZE`] bytes is written with one Put Blob. A
//! larger one is cut into blocks of [`BLOCK_SIZE`] bytes, each streamed from
//! disk with Put Block, and Put Block List commits them in order. The blob
//! shows the new content only after that commit. The SAS URL is the
//! only credential: no tracking token goes to the storage account.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use reqwest::Method;
use url::Url;

use super::for_each_parallel;
use crate::error::{Error, Result};
use crate::http::{redact_url, FileRange, Http, RequestBody};

/// Bytes per block, and the largest file written with a single Put Blob.
pub const BLOCK_SIZE: u64 = 8 * 1024 * 1024;

/// Blocks one blob may have (Azure Blob Storage's limit), so files up to
/// `BLOCK_SIZE * MAX_BLOCKS` bytes (about 390 GiB) can be uploaded.
pub const MAX_BLOCKS: u64 = 50_000;

/// The Blob service REST version the requests ask for.
const API_VERSION: &str = "2021-08-06";

/// Uploads a local file to the blob at `sas`, in blocks when it is larger
/// than [`BLOCK_SIZE`], with at most `workers` blocks in flight.
pub fn upload_file(http: &Http, sas: &Url, local: &Path, workers: usize) -> Result<()> {
    let size = std::fs::metadata(local)
        .map_err(|err| Error::io("inspecting", local, err))?
        .len();
    if size <= BLOCK_SIZE {
        return put_blob(http, sas, RequestBody::File(local));
    }
    let blocks = size.div_ceil(BLOCK_SIZE);
    if blocks > MAX_BLOCKS {
        return Err(Error::invalid(
            "artifact file",
            local.display().to_string(),
            format!("it has {size} bytes, more than a block blob of {MAX_BLOCKS} blocks of {BLOCK_SIZE} bytes holds"),
        ));
    }
    let ids: Vec<String> = (0..blocks).map(block_id).collect();
    let indices: Vec<u64> = (0..blocks).collect();
    for_each_parallel(&indices, workers, |&index| {
        let offset = index * BLOCK_SIZE;
        let range = FileRange {
            path: local,
            offset,
            len: Some(BLOCK_SIZE.min(size - offset)),
            progress: None,
        };
        let mut url = sas.clone();
        url.query_pairs_mut()
            .append_pair("comp", "block")
            .append_pair("blockid", &ids[index as usize]);
        send(http, Method::PUT, &url, RequestBody::FileRange(range), &headers(&[]), sas, "upload").map(drop)
    })?;
    let mut url = sas.clone();
    url.query_pairs_mut().append_pair("comp", "blocklist");
    let xml = block_list_xml(&ids);
    let extra = headers(&[("Content-Type", "application/xml")]);
    send(http, Method::PUT, &url, RequestBody::Bytes(xml.as_bytes()), &extra, sas, "upload").map(drop)
}

/// Uploads bytes held in memory to the blob at `sas` with one Put Blob.
pub fn upload_bytes(http: &Http, sas: &Url, bytes: &[u8]) -> Result<()> {
    put_blob(http, sas, RequestBody::Bytes(bytes))
}

/// Downloads the blob at `sas` into `dest` through a temporary file in the
/// same directory, so `dest` never contains a partial file.
pub fn download(http: &Http, sas: &Url, dest: &Path) -> Result<()> {
    let mut response = send(http, Method::GET, sas, RequestBody::Empty, &headers(&[]), sas, "download")?;
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut part = tempfile::NamedTempFile::new_in(parent).map_err(|err| Error::io("creating a file in", parent, err))?;
    response.copy_to(part.as_file_mut()).map_err(|err| Error::Storage {
        operation: "download",
        url: redact_url(sas),
        status: None,
        message: redact_signature(&format!("the transfer was interrupted: {}", err.without_url()), sas),
    })?;
    part.as_file_mut().flush().map_err(|err| Error::io("writing", dest, err))?;
    part.persist(dest).map_err(|err| Error::io("renaming into", dest, err.error))?;
    Ok(())
}

fn put_blob(http: &Http, sas: &Url, body: RequestBody<'_>) -> Result<()> {
    let extra = headers(&[("x-ms-blob-type", "BlockBlob")]);
    send(http, Method::PUT, sas, body, &extra, sas, "upload").map(drop)
}

fn headers(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut map = BTreeMap::from([("x-ms-version".to_string(), API_VERSION.to_string())]);
    for (name, value) in extra {
        map.insert(name.to_string(), value.to_string());
    }
    map
}

/// Sends one storage request and turns a failure into [`Error::Storage`].
fn send(
    http: &Http,
    method: Method,
    url: &Url,
    body: RequestBody<'_>,
    headers: &BTreeMap<String, String>,
    sas: &Url,
    operation: &'static str,
) -> Result<reqwest::blocking::Response> {
    http.send_presigned(method, url, body, headers).map_err(|err| {
        let (status, detail) = match err {
            Error::Api { status, message, .. } => {
                let hint = if status == 403 {
                    "; the storage account refused the SAS URL from the Azure ML run-history service \
                     (expired, or without the needed permission): check this machine's clock and try again"
                } else {
                    ""
                };
                (Some(status), format!("returned {status}: {}{hint}", storage_error_text(&message)))
            }
            Error::Unreachable { message, .. } => (
                None,
                format!(
                    "no response: {message}; check the network path to the storage account and \
                     MLFLOW_HTTP_REQUEST_TIMEOUT"
                ),
            ),
            other => return other,
        };
        Error::Storage {
            operation,
            url: redact_url(sas),
            status,
            message: redact_signature(&detail, sas),
        }
    })
}

/// Shortens the XML error document of the Blob service
/// (`<Error><Code>..</Code><Message>..</Message></Error>`) to "Code: Message"
/// with the first line of the message. Other text is returned as it is.
fn storage_error_text(body: &str) -> String {
    let element = |name: &str| {
        let start = body.find(&format!("<{name}>"))? + name.len() + 2;
        let end = body[start..].find(&format!("</{name}>"))? + start;
        Some(body[start..end].trim().to_string())
    };
    match (element("Code"), element("Message")) {
        (Some(code), Some(message)) => {
            let first_line = message.lines().next().unwrap_or_default().trim().to_string();
            format!("{code}: {first_line}")
        }
        _ => body.to_string(),
    }
}

/// Replaces the SAS signature, should a server echo it, with `<redacted>`.
fn redact_signature(text: &str, sas: &Url) -> String {
    let signature = sas.query_pairs().find(|(key, _)| key == "sig").map(|(_, value)| value.into_owned());
    match signature.filter(|s| s.len() >= 8) {
        Some(signature) => text.replace(&signature, "<redacted>"),
        None => text.to_string(),
    }
}

/// Returns the id of block `index`. The ids of one blob must all have the
/// same length before base64 encoding, hence the zero padding.
fn block_id(index: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("mlflowreg-{index:06}"))
}

fn block_list_xml(ids: &[String]) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
    for id in ids {
        xml.push_str("<Latest>");
        xml.push_str(id);
        xml.push_str("</Latest>");
    }
    xml.push_str("</BlockList>");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ids_have_equal_length() {
        let ids: Vec<String> = [0, 9, 999, 49_999].into_iter().map(block_id).collect();
        assert!(ids.iter().all(|id| id.len() == ids[0].len()), "{ids:?}");
        assert_eq!(ids[0], "bWxmbG93cmVnLTAwMDAwMA==");
        assert_ne!(ids[1], ids[2]);
    }

    #[test]
    fn block_list_names_blocks_in_order() {
        let xml = block_list_xml(&["YQ==".into(), "Yg==".into()]);
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>YQ==</Latest><Latest>Yg==</Latest></BlockList>"
        );
    }

    #[test]
    fn storage_errors_are_shortened() {
        let body = "<?xml version=\"1.0\"?>\n<Error>\n  <Code>AuthorizationFailure</Code>\n  <Message>Server failed.\nRequestId:1</Message>\n</Error>";
        assert_eq!(storage_error_text(body), "AuthorizationFailure: Server failed.");
        assert_eq!(storage_error_text("plain text"), "plain text");
    }

    #[test]
    fn signature_is_redacted_from_messages() {
        let sas = Url::parse("http://127.0.0.1:10000/acct/c/b?sv=2020-12-06&sig=abcDEF123%2Bxyz").unwrap();
        let text = redact_signature("server said abcDEF123+xyz is wrong", &sas);
        assert_eq!(text, "server said <redacted> is wrong");
    }
}
