//! Store URLs, a convenience for the CLI and for programs that do not already hold an
//! `ObjectStore`: `s3://bucket/prefix`, `file:///absolute/path`, `memory://`.
//!
//! For `s3://` (the `aws` feature) the endpoint, region and credentials come from the
//! standard AWS environment and `aws-config`'s provider chain (environment, profile, SSO,
//! web identity, IMDS).
//! `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` point at an S3-compatible server; plain HTTP
//! is allowed only when that endpoint says `http://`.

use std::sync::Arc;
#[cfg(feature = "aws")]
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
}

/// The default store when none is given: a `.cairn` directory under the current directory.
pub fn default_url() -> Result<String> {
    let cwd = std::env::current_dir()
        .map_err(|e| Error::Config(format!("cannot read the current directory: {e}")))?;
    Ok(format!("file://{}", cwd.join(".cairn").display()))
}

/// Opens the store a URL names.
pub async fn open(url: &str) -> Result<Opened> {
    if url == "memory://" || url == "memory:" {
        return Ok(Opened {
            store: Arc::new(InMemory::new()),
            prefix: String::new(),
            kind: "memory",
        });
    }
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(Error::Config(format!(
                "{url:?}: a file URL needs an absolute path, as in file:///var/lib/cairn"
            )));
        }
        std::fs::create_dir_all(path)
            .map_err(|e| Error::Config(format!("cannot create {path}: {e}")))?;
        let fs = LocalFileSystem::new_with_prefix(path)
            .map_err(|e| Error::Config(format!("cannot open {path}: {e}")))?;
        return Ok(Opened {
            store: Arc::new(fs),
            prefix: String::new(),
            kind: "local filesystem",
        });
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Config(format!("{url:?} names no bucket")));
        }
        return open_s3(bucket, prefix.trim_matches('/')).await;
    }
    Err(Error::Config(format!(
        "{url:?}: expected s3://bucket/prefix, file:///absolute/path or memory://"
    )))
}

/// Without the `aws` feature there is no S3 client: the URL is refused, naming the feature.
#[cfg(not(feature = "aws"))]
async fn open_s3(bucket: &str, _prefix: &str) -> Result<Opened> {
    Err(Error::Config(format!(
        "s3://{bucket}: this build of cairn has no S3 support (enable its `aws` feature)"
    )))
}

#[cfg(feature = "aws")]
async fn open_s3(bucket: &str, prefix: &str) -> Result<Opened> {
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
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(region)
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .with_retry(RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(10),
            ..Default::default()
        })
        // Set before `with_allow_http`: `with_client_options` replaces every client option.
        .with_client_options(ClientOptions::new().with_timeout(Duration::from_secs(10)));
    if let Some(endpoint) = endpoint {
        let http = endpoint.starts_with("http://");
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(http)
            .with_virtual_hosted_style_request(false);
    }
    if let Some(provider) = sdk.credentials_provider() {
        builder = builder.with_credentials(super::aws::adapt(provider));
    }
    let s3 = builder
        .build()
        .map_err(|e| Error::Config(format!("s3://{bucket}: {e}")))?;
    Ok(Opened {
        store: Arc::new(s3),
        prefix: prefix.to_string(),
        kind: "s3",
    })
}
