//! Store URLs, a convenience for the CLI and for programs that do not already hold an
//! `ObjectStore`: `s3://bucket/prefix`, `file:///absolute/path`, `memory://`.
//!
//! For `s3://` (the `aws` feature) the endpoint, region and credentials come from the
//! standard AWS environment and `aws-config`'s provider chain (environment, profile, SSO,
//! web identity, IMDS).
//! `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` point at an S3-compatible server; plain HTTP
//! is allowed only when that endpoint says `http://`.

use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "aws")]
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::ObjectStore;
#[cfg(feature = "aws")]
use object_store::{ClientOptions, RetryConfig};

use crate::error::{Error, Result};

/// An opened store and the prefix inside it that the URL named.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The object store.
    pub store: Arc<dyn ObjectStore>,
    /// The root prefix inside it (empty for `file://` and `memory://`).
    pub prefix: String,
    /// What kind of store it is, for reports.
    pub kind: &'static str,
    /// Where requests go (`http://127.0.0.1:4566`, `https://s3.us-east-1.amazonaws.com`),
    /// for messages; `None` for a local directory or memory.
    pub endpoint: Option<String>,
}

impl Opened {
    /// [`StoreOptions`](super::StoreOptions) that bound each request by `timeout` and name
    /// this store's endpoint in errors.
    pub fn store_options(&self, timeout: Duration) -> super::StoreOptions {
        super::StoreOptions {
            request_timeout: timeout,
            endpoint: self.endpoint.clone(),
            ..Default::default()
        }
    }
}

/// How [`open_with`] opens a store.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Create a `file://` URL's directory when it does not exist. Default: yes. Commands
    /// that only look open with `false`: a missing directory is then [`Error::NoStore`],
    /// and nothing is created.
    pub create: bool,
    /// The longest one request to an `s3://` store may take: the HTTP client's timeout, and
    /// the time within which object_store retries a failed attempt. Default 10 s, as
    /// [`StoreOptions::request_timeout`](super::StoreOptions::request_timeout): S3 answers
    /// small requests in tens of milliseconds, and a lease renewed every ttl/3 must learn of
    /// a hung request well within its ttl.
    pub timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            create: true,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Longest a connection may take to open (the HTTP client's connect timeout), unless the
/// request timeout is shorter: object_store's default, and S3's advice (3.1 s).
#[cfg(feature = "aws")]
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the store a URL names, creating a `file://` directory that does not exist yet.
pub async fn open(url: &str) -> Result<Opened> {
    open_with(url, &OpenOptions::default()).await
}

/// Opens the store a URL names, as `options` say.
pub async fn open_with(url: &str, options: &OpenOptions) -> Result<Opened> {
    if url == "memory://" || url == "memory:" {
        return Ok(Opened {
            store: Arc::new(InMemory::new()),
            prefix: String::new(),
            kind: "memory",
            endpoint: None,
        });
    }
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(Error::Config(format!(
                "{url:?}: a file URL needs an absolute path, as in file:///var/lib/cairn"
            )));
        }
        if options.create {
            std::fs::create_dir_all(path)
                .map_err(|e| Error::Config(format!("cannot create {path}: {e}")))?;
        } else if !std::path::Path::new(path).is_dir() {
            return Err(Error::NoStore {
                named: Some(url.to_string()),
                looked_in: Vec::new(),
            });
        }
        let fs = LocalFileSystem::new_with_prefix(path)
            .map_err(|e| Error::Config(format!("cannot open {path}: {e}")))?;
        return Ok(Opened {
            store: Arc::new(fs),
            prefix: String::new(),
            kind: "local filesystem",
            endpoint: None,
        });
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Config(format!("{url:?} names no bucket")));
        }
        return open_s3(bucket, prefix.trim_matches('/'), options.timeout).await;
    }
    Err(Error::Config(format!(
        "{url:?}: expected s3://bucket/prefix, file:///absolute/path or memory://"
    )))
}

/// Without the `aws` feature there is no S3 client: the URL is refused, naming the feature.
#[cfg(not(feature = "aws"))]
async fn open_s3(bucket: &str, _prefix: &str, _timeout: Duration) -> Result<Opened> {
    Err(Error::Config(format!(
        "s3://{bucket}: this build of cairn has no S3 support (enable its `aws` feature)"
    )))
}

#[cfg(feature = "aws")]
async fn open_s3(bucket: &str, prefix: &str, timeout: Duration) -> Result<Opened> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
        .ok()
        .or_else(|| sdk.endpoint_url().map(str::to_string));
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".to_string());
    let shown_endpoint = match &endpoint {
        Some(e) => super::cause::endpoint_of(e).or_else(|| Some(e.clone())),
        None => Some(format!("https://s3.{region}.amazonaws.com")),
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(region)
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        // object_store retries a failed attempt (connection refused, 5xx) only within the
        // request timeout, so one request never takes much longer than it.
        .with_retry(RetryConfig {
            max_retries: 3,
            retry_timeout: timeout,
            ..Default::default()
        })
        // Set before `with_allow_http`: `with_client_options` replaces every client option.
        .with_client_options(
            ClientOptions::new()
                .with_timeout(timeout)
                .with_connect_timeout(timeout.min(CONNECT_TIMEOUT)),
        );
    if let Some(endpoint) = endpoint {
        let http = endpoint.starts_with("http://");
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(http)
            .with_virtual_hosted_style_request(false);
    }
    if let Some(provider) = sdk.credentials_provider() {
        builder = builder.with_credentials(super::aws::adapt_checked(provider).await?);
    }
    let s3 = builder
        .build()
        .map_err(|e| Error::Config(format!("s3://{bucket}: {e}")))?;
    Ok(Opened {
        store: Arc::new(s3),
        prefix: prefix.to_string(),
        kind: "s3",
        endpoint: shown_endpoint,
    })
}
