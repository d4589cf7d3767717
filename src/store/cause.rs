//! What an `object_store` error means, in one line.
//!
//! object_store's errors nest: an S3 error's `Display` repeats its request, elapsed time and
//! the server's XML body at every level of its source chain. Operators need the cause and
//! the fix, once. [`diagnose`] walks the chain and names the cause:
//!
//! - the bucket does not exist (a 404 whose body says `NoSuchBucket`, or Azure's
//!   `ContainerNotFound`): configuration,
//!   never retried;
//! - no credentials could be found: configuration, never retried;
//! - the endpoint refused the connection or cannot be resolved;
//! - no answer within the request timeout;
//! - an HTTP status, with the S3 error code and message from its body;
//! - anything else, as its first line.
//!
//! [`summary`] renders it as one line without elapsed times, so a cause that repeats reads
//! the same each time (and repeated warnings can be recognised as such).

use std::error::Error as StdError;
use std::time::Duration;

#[cfg(any(feature = "aws", feature = "azure"))]
use object_store::client::{HttpError, HttpErrorKind};

/// The longest a summary gets; the rest of a long error body is cut.
const MAX_SUMMARY: usize = 240;

/// The error cairn puts in place of a request that got no answer in time (its own guard, or
/// the HTTP client's timeout): it names the endpoint and the time allowed.
#[derive(Debug)]
pub struct NoAnswer {
    /// Where the request went (`http://127.0.0.1:4566`), when known.
    pub endpoint: Option<String>,
    /// The time allowed.
    pub after: Duration,
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no answer from {} within {}",
            self.endpoint.as_deref().unwrap_or("the store"),
            show(self.after)
        )
    }
}

impl StdError for NoAnswer {}

/// What went wrong with a request, as far as the error says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnosis {
    /// The bucket does not exist.
    NoSuchBucket {
        /// Its name, when the server said it.
        bucket: Option<String>,
    },
    /// No credentials were found (only the AWS provider chain tells).
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    NoCredentials,
    /// The connection could not be made (refused, unresolvable name, …).
    Connect {
        /// Where to, when known.
        endpoint: Option<String>,
        /// Why, in a few words.
        reason: String,
    },
    /// No answer in time.
    Timeout {
        /// Where the request went, when known.
        endpoint: Option<String>,
        /// The time allowed, when known.
        after: Option<Duration>,
    },
    /// The request reached the server but failed on the way (reset, cut short, …).
    Request {
        /// Where the request went, when known.
        endpoint: Option<String>,
        /// Why, in a few words.
        reason: String,
    },
    /// The server answered with an error status.
    Status {
        /// `503 Service Unavailable`.
        status: String,
        /// The S3 error code from the body (`SlowDown`), if any.
        code: Option<String>,
        /// The S3 error message from the body, if any.
        message: Option<String>,
    },
    /// Something else: the error's first line.
    Other(String),
}

impl Diagnosis {
    /// Whether retrying (or reading back) cannot change the outcome: the store's
    /// configuration is wrong (no bucket, no credentials, or credentials the store refuses).
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            Diagnosis::NoSuchBucket { .. } | Diagnosis::NoCredentials
        ) || self.is_access_denied()
    }

    /// Whether the store answered 401 or 403: the credentials are refused, or may not do
    /// this. Some clients (object_store's GCS and Azure ones among them) pass the status on
    /// as a generic error instead of `PermissionDenied`.
    pub fn is_access_denied(&self) -> bool {
        matches!(self, Diagnosis::Status { status, .. }
            if status.starts_with("401") || status.starts_with("403"))
    }
}

/// Every error in `e`'s source chain, `e` first.
fn chain<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |&e| StdError::source(e))
}

/// What the HTTP client said went wrong (only an S3 store has an HTTP client).
#[cfg_attr(not(feature = "aws"), allow(dead_code))]
enum HttpKind {
    Connect,
    Timeout,
    Other,
}

/// Names the cause of `e`.
pub fn diagnose(e: &object_store::Error) -> Diagnosis {
    let top: &(dyn StdError + 'static) = e;
    let mut endpoint = None;
    #[cfg_attr(not(any(feature = "aws", feature = "azure")), allow(unused_mut))]
    let mut http_kind: Option<HttpKind> = None;
    let mut status = None;
    for link in chain(top) {
        if let Some(n) = link.downcast_ref::<NoAnswer>() {
            return Diagnosis::Timeout {
                endpoint: n.endpoint.clone(),
                after: Some(n.after),
            };
        }
        #[cfg(feature = "aws")]
        {
            if let Some(c) =
                link.downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
            {
                if matches!(
                    c,
                    aws_credential_types::provider::error::CredentialsError::CredentialsNotLoaded(
                        _
                    )
                ) {
                    return Diagnosis::NoCredentials;
                }
            }
        }
        #[cfg(any(feature = "aws", feature = "azure"))]
        if let Some(h) = link.downcast_ref::<HttpError>() {
            http_kind.get_or_insert(match h.kind() {
                HttpErrorKind::Connect => HttpKind::Connect,
                HttpErrorKind::Timeout => HttpKind::Timeout,
                _ => HttpKind::Other,
            });
        }
        let text = link.to_string();
        if endpoint.is_none() {
            endpoint = request_endpoint(&text);
        }
        if status.is_none() {
            status = status_of(&text);
        }
    }
    if let Some((status, body)) = status {
        let code = xml_field(&body, "Code");
        // Azure names a missing container so (and no container in the body).
        if matches!(code.as_deref(), Some("NoSuchBucket" | "ContainerNotFound")) {
            return Diagnosis::NoSuchBucket {
                bucket: xml_field(&body, "BucketName"),
            };
        }
        let message = xml_field(&body, "Message");
        return Diagnosis::Status {
            status,
            code,
            message,
        };
    }
    match http_kind {
        Some(HttpKind::Connect) => Diagnosis::Connect {
            endpoint,
            reason: root_reason(top),
        },
        Some(HttpKind::Timeout) => Diagnosis::Timeout {
            endpoint,
            after: None,
        },
        Some(_) => Diagnosis::Request {
            endpoint,
            reason: root_reason(top),
        },
        None => Diagnosis::Other(first_line(&e.to_string())),
    }
}

/// `e`'s cause in one line, the same each time the same cause repeats.
pub fn summary(e: &object_store::Error) -> String {
    describe(&diagnose(e))
}

/// A diagnosis in one line.
pub fn describe(d: &Diagnosis) -> String {
    let text = match d {
        Diagnosis::NoSuchBucket { bucket: Some(b) } => format!("bucket {b} does not exist"),
        Diagnosis::NoSuchBucket { bucket: None } => "the bucket does not exist".into(),
        Diagnosis::NoCredentials => "no AWS credentials found".into(),
        Diagnosis::Connect { endpoint, reason } => format!(
            "cannot connect to {}: {reason}",
            endpoint.as_deref().unwrap_or("the store")
        ),
        Diagnosis::Timeout { endpoint, after } => {
            let from = endpoint.as_deref().unwrap_or("the store");
            match after {
                Some(a) => format!("no answer from {from} within {}", show(*a)),
                None => format!("no answer from {from} in time"),
            }
        }
        Diagnosis::Request { endpoint, reason } => format!(
            "request to {} failed: {reason}",
            endpoint.as_deref().unwrap_or("the store")
        ),
        Diagnosis::Status {
            status,
            code,
            message,
        } => match (code, message) {
            (Some(c), Some(m)) => format!("{status}: {c} ({m})"),
            (Some(c), None) => format!("{status}: {c}"),
            (None, Some(m)) => format!("{status}: {m}"),
            (None, None) => status.clone(),
        },
        Diagnosis::Other(s) => s.clone(),
    };
    clip(text)
}

/// The first line of `s`, trimmed.
fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

fn clip(mut s: String) -> String {
    if s.len() > MAX_SUMMARY {
        // The longest prefix of whole characters within the limit.
        let end = s
            .char_indices()
            .map(|(i, _)| i)
            .take_while(|&i| i <= MAX_SUMMARY)
            .last()
            .unwrap_or(0);
        s.truncate(end);
        s.push('…');
    }
    s
}

/// The innermost error's words: `connection refused`, `dns error: …`.
fn root_reason(e: &(dyn StdError + 'static)) -> String {
    let mut root = e;
    for link in chain(e) {
        root = link;
    }
    if let Some(io) = root.downcast_ref::<std::io::Error>() {
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused => return "connection refused".into(),
            std::io::ErrorKind::ConnectionReset => return "connection reset".into(),
            std::io::ErrorKind::TimedOut => return "timed out".into(),
            _ => {}
        }
    }
    let text = first_line(&root.to_string());
    // "Connection refused (os error 111)" reads better without the number.
    match text.split_once(" (os error ") {
        Some((words, _)) => words.to_lowercase(),
        None => text,
    }
}

/// `scheme://authority` of the request an object_store retry error names
/// (`Error performing GET http://host:port/bucket/key in 3ms …`); `None` when redacted.
fn request_endpoint(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("Error performing ")?;
    let mut words = rest.split_whitespace();
    let _method = words.next()?;
    endpoint_of(words.next()?)
}

/// `scheme://authority` of a URL.
pub fn endpoint_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if scheme.is_empty() || authority.is_empty() {
        return None;
    }
    Some(format!("{scheme}://{authority}"))
}

/// The status and body of `Server returned non-2xx status code: 404 Not Found: <body>` (or
/// `Server returned error response: <body>`).
fn status_of(text: &str) -> Option<(String, String)> {
    const NON_2XX: &str = "Server returned non-2xx status code: ";
    const ERROR_BODY: &str = "Server returned error response: ";
    if let Some((_, rest)) = text.split_once(NON_2XX) {
        let (status, body) = rest.split_once(": ").unwrap_or((rest, ""));
        return Some((status.trim().to_string(), body.to_string()));
    }
    let (_, body) = text.split_once(ERROR_BODY)?;
    Some(("error in a 200 answer".into(), body.to_string()))
}

/// The text of `<name>…</name>` in an XML body, when present and short.
fn xml_field(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let (_, after) = body.split_once(&open)?;
    let (v, _) = after.split_once(&close)?;
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// A duration as people write it: `1s`, `1.5s`, `500ms`.
pub fn show(d: Duration) -> String {
    let ms = d.as_millis();
    if ms >= 1000 && ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else if ms >= 1000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(source: impl StdError + Send + Sync + 'static) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: Box::new(source),
        }
    }

    #[derive(Debug)]
    struct Text(String);
    impl std::fmt::Display for Text {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl StdError for Text {}

    #[test]
    fn a_missing_bucket_is_named_from_the_xml_body_once() {
        let body = "Error performing PUT http://127.0.0.1:4566/ux-nosuch/p/_probe/x.json in \
                    5.5ms - Server returned non-2xx status code: 404 Not Found: <?xml \
                    version='1.0' encoding='utf-8'?>\n<Error><Code>NoSuchBucket</Code><Message>\
                    The specified bucket does not exist</Message><BucketName>ux-nosuch\
                    </BucketName></Error>";
        let e = object_store::Error::NotFound {
            path: "p/_probe/x.json".into(),
            source: Box::new(Text(body.into())),
        };
        let d = diagnose(&e);
        assert_eq!(
            d,
            Diagnosis::NoSuchBucket {
                bucket: Some("ux-nosuch".into())
            }
        );
        assert!(d.is_configuration());
        assert_eq!(summary(&e), "bucket ux-nosuch does not exist");
    }

    #[test]
    fn a_missing_azure_container_is_a_missing_bucket() {
        let body = "Error performing GET http://127.0.0.1:10000/devstoreaccount1/nosuch?restype=\
                    container&comp=list in 2ms - Server returned non-2xx status code: 404 Not \
                    Found: <?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Error><Code>\
                    ContainerNotFound</Code><Message>The specified container does not exist.\
                    </Message></Error>";
        let e = object_store::Error::NotFound {
            path: "p".into(),
            source: Box::new(Text(body.into())),
        };
        let d = diagnose(&e);
        assert_eq!(d, Diagnosis::NoSuchBucket { bucket: None });
        assert!(d.is_configuration());
    }

    #[test]
    fn a_status_reads_as_its_s3_code_and_message_on_one_line() {
        let body = "Error performing GET http://h:1/b/k in 2ms, after 3 retries - Server returned \
                    non-2xx status code: 503 Service Unavailable: <Error><Code>SlowDown</Code>\
                    <Message>Please reduce your request rate.</Message></Error>";
        let s = summary(&generic(Text(body.into())));
        assert_eq!(
            s,
            "503 Service Unavailable: SlowDown (Please reduce your request rate.)"
        );
    }

    #[test]
    fn a_403_passed_on_as_a_generic_error_is_access_denied_and_not_retried() {
        // What object_store's GCS client gives for a 403 (seen with `gs://` and no
        // credentials): a generic error, not `PermissionDenied`.
        let body = "Error performing GET https://storage.googleapis.com/b/_cairn/protocol.json \
                    in 80ms - Server returned non-2xx status code: 403 Forbidden: ";
        let d = diagnose(&generic(Text(body.into())));
        assert!(d.is_access_denied(), "{d:?}");
        assert!(d.is_configuration());
        let other = "Server returned non-2xx status code: 503 Service Unavailable: ";
        assert!(!diagnose(&generic(Text(other.into()))).is_configuration());
    }

    #[test]
    fn a_missing_key_is_not_a_missing_bucket() {
        let body = "Server returned non-2xx status code: 404 Not Found: <Error><Code>NoSuchKey\
                    </Code></Error>";
        let e = object_store::Error::NotFound {
            path: "k".into(),
            source: Box::new(Text(body.into())),
        };
        assert!(!diagnose(&e).is_configuration());
    }

    // The error it diagnoses is the AWS SDK's.
    #[cfg(feature = "aws")]
    #[test]
    fn no_credentials_is_configuration() {
        let not_loaded =
            aws_credential_types::provider::error::CredentialsError::not_loaded("nothing set");
        let e = generic(not_loaded);
        assert_eq!(diagnose(&e), Diagnosis::NoCredentials);
        assert!(diagnose(&e).is_configuration());
        assert_eq!(summary(&e), "no AWS credentials found");
    }

    #[test]
    fn no_answer_names_the_endpoint_and_the_time_allowed() {
        let e = generic(NoAnswer {
            endpoint: Some("http://127.0.0.1:9".into()),
            after: Duration::from_secs(1),
        });
        assert_eq!(summary(&e), "no answer from http://127.0.0.1:9 within 1s");
    }

    #[test]
    fn endpoints_are_scheme_and_authority() {
        assert_eq!(
            endpoint_of("http://127.0.0.1:1/cairn-test/ux/_cairn/protocol.json").as_deref(),
            Some("http://127.0.0.1:1")
        );
        assert_eq!(
            request_endpoint("Error performing GET https://b.s3.amazonaws.com/k?x=1 in 3ms")
                .as_deref(),
            Some("https://b.s3.amazonaws.com")
        );
        assert_eq!(
            request_endpoint("Error performing GET REDACTED in 3ms"),
            None
        );
    }

    #[test]
    fn long_errors_are_clipped_and_one_line() {
        let e = generic(Text(format!("{}\nsecond line", "x".repeat(1000))));
        let s = summary(&e);
        assert!(!s.contains('\n'));
        assert!(s.chars().count() <= MAX_SUMMARY + 1, "{}", s.len());
    }
}
