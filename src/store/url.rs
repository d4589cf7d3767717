//! Store URLs, a convenience for the CLI and for programs that do not already hold an
//! `ObjectStore`: `s3://bucket/prefix`, `az://container/prefix`, `gs://bucket/prefix`,
//! `file:///absolute/path`, `memory://`.
//!
//! object_store's own parser (`ObjectStoreScheme::parse`) reads them, so a path is
//! percent-decoded (`file:///tmp/a%20b` is the directory `/tmp/a b`) and Hadoop's `s3a://`
//! means `s3://`. What it also recognises but cairn cannot open as written is refused with
//! the accepted forms: other schemes, Azure's other spellings (`abfs://`, `adl://`,
//! `azure://`), plain `http(s)://` stores, and `https://` S3 or Azure URLs, whose endpoint
//! and region or account cairn takes from the environment instead. A URL with a user, port,
//! query or fragment is refused (a `?` or `#` in a path is written `%3F` or `%23`), and so is
//! a path with an empty segment (`file:///a//b`), which object_store's paths cannot hold.
//!
//! For `s3://` (the `aws` feature) the endpoint, region and credentials come from the
//! standard AWS environment and `aws-config`'s provider chain (environment, profile, SSO,
//! web identity, IMDS).
//! `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` point at an S3-compatible server; plain HTTP
//! is allowed only when that endpoint says `http://`.
//!
//! For `az://` (the `azure` feature) everything but the container comes from the `AZURE_*`
//! environment, read by object_store's `MicrosoftAzureBuilder::from_env`: the account
//! (`AZURE_STORAGE_ACCOUNT_NAME`), its key (`AZURE_STORAGE_ACCOUNT_KEY`) or another credential
//! (a SAS, a service principal, workload or managed identity, the Azure CLI), and an endpoint
//! (`AZURE_STORAGE_ENDPOINT`, plain HTTP allowed only when it says `http://`).
//! `AZURE_STORAGE_USE_EMULATOR=true` points at Azurite, at `AZURITE_BLOB_STORAGE_URL`
//! (default `http://127.0.0.1:10000`) with its well-known account and key.
//!
//! For `gs://` (the `gcp` feature) everything but the bucket comes from the `GOOGLE_*`
//! environment, read by object_store's `GoogleCloudStorageBuilder::from_env`: a service
//! account file (`GOOGLE_SERVICE_ACCOUNT`) or key (`GOOGLE_SERVICE_ACCOUNT_KEY`), else
//! application default credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's, or the
//! metadata server), and `GOOGLE_BASE_URL` for another endpoint. GCS conditions a replace on
//! the object's generation, which cairn keeps beside the etag of what it read
//! ([`super::Object::version`]).
//!
//! # Opening is cheap when the environment says everything
//!
//! A CLI call pays for opening the store every time, so two costs that change nothing are
//! skipped (`cairn lock run X -- true` on LocalStack spent about a third of its time on them):
//!
//! - **The provider chain**, when the environment alone decides the outcome: static
//!   credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optionally
//!   `AWS_SESSION_TOKEN`), a region (`AWS_REGION` or `AWS_DEFAULT_REGION`), and no shared
//!   config file (`AWS_CONFIG_FILE`, default `~/.aws/config`) that could name an endpoint or
//!   `ignore_configured_endpoint_urls`. The chain reads the environment first for each of
//!   these, so it would return exactly these values; building it costs an STS client and a
//!   TLS client that loads every system root certificate (see `from_environment`).
//! - **The system root certificates**, when the endpoint is plain `http://`: no TLS
//!   connection is ever made to it, so the HTTP client is built without them.

use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "aws")]
use aws_credential_types::provider::SharedCredentialsProvider;
#[cfg(feature = "aws")]
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
#[cfg(feature = "aws")]
use object_store::ClientOptions;
use object_store::ObjectStore;
#[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
use object_store::RetryConfig;

use crate::error::{Error, Result};

/// An opened store and the prefix inside it that the URL named.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The object store.
    pub store: Arc<dyn ObjectStore>,
    /// The root prefix inside it (empty for `file://` and `memory://`).
    pub prefix: String,
    /// What kind of store it is.
    pub kind: StoreKind,
    /// Where requests go (`http://127.0.0.1:4566`, `https://s3.us-east-1.amazonaws.com`),
    /// for messages; `None` for a local directory or memory.
    pub endpoint: Option<String>,
}

/// The kind of store a URL opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreKind {
    /// `memory://`: object_store's in-memory store, private to the process.
    Memory,
    /// `file://`: a local directory, which has no `If-Match` (the version chain).
    LocalFilesystem,
    /// `s3://`: Amazon S3 or an S3-compatible server.
    S3,
    /// `az://`: Azure Blob Storage (or Azurite).
    Azure,
    /// `gs://`: Google Cloud Storage.
    Gcs,
}

impl StoreKind {
    /// Its name in reports: `memory`, `local filesystem`, `s3`, `azure`, `gcs`.
    pub fn label(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::LocalFilesystem => "local filesystem",
            StoreKind::S3 => "s3",
            StoreKind::Azure => "azure",
            StoreKind::Gcs => "gcs",
        }
    }
}

impl std::fmt::Display for StoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
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
    /// Create a `file://` URL's directory when it does not exist. Default: no: a missing
    /// directory is [`Error::NoStore`] and nothing is created, so that a typo in a path
    /// does not leave a node coordinating alone in a directory of its own. The CLI's
    /// writing commands create it, as `mkdir -p` would.
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
            create: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Longest a connection may take to open (the HTTP client's connect timeout), unless the
/// request timeout is shorter: object_store's default, and S3's advice (3.1 s).
#[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// object_store retries a failed attempt (connection refused, 5xx) only within the request
/// timeout, so one request never takes much longer than it.
#[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
fn retry_within(timeout: Duration) -> RetryConfig {
    RetryConfig {
        max_retries: 3,
        retry_timeout: timeout,
        ..Default::default()
    }
}

/// The HTTP client's request and connect timeouts, as the settings of an Azure or GCS
/// builder (which keeps every other client option the environment set, a proxy say).
#[cfg(any(feature = "azure", feature = "gcp"))]
fn client_timeouts(timeout: Duration) -> [(object_store::ClientConfigKey, String); 2] {
    use object_store::ClientConfigKey;
    let millis = |d: Duration| format!("{}ms", d.as_millis());
    [
        (ClientConfigKey::Timeout, millis(timeout)),
        (
            ClientConfigKey::ConnectTimeout,
            millis(timeout.min(CONNECT_TIMEOUT)),
        ),
    ]
}

/// The HTTP client's options for an `s3://` store.
#[cfg(feature = "aws")]
fn client_options(timeout: Duration, plain_http: bool) -> ClientOptions {
    let options = ClientOptions::new()
        .with_timeout(timeout)
        .with_connect_timeout(timeout.min(CONNECT_TIMEOUT));
    // Plain HTTP never needs a root certificate: not loading them saves a read of every file
    // under /etc/ssl/certs on each start, which a short-lived CLI command notices. The option
    // is object_store 0.14's (feature `object-store-0-14`, which the binary turns on); against
    // 0.13 every client loads them.
    #[cfg(feature = "object-store-0-14")]
    let options = options.with_no_system_certificates(plain_http);
    #[cfg(not(feature = "object-store-0-14"))]
    let _ = plain_http;
    options
}

/// Opens the store a URL names. A `file://` directory that does not exist is
/// [`Error::NoStore`]; [`open_with`] and [`OpenOptions::create`] create it.
///
/// # Cancel safety
///
/// Cancel-safe: opening reads the environment and, for `file://`, the directory; nothing is
/// written.
pub async fn open(url: &str) -> Result<Opened> {
    open_with(url, &OpenOptions::default()).await
}

/// Opens the store a URL names, as `options` say.
///
/// # Cancel safety
///
/// Cancel-safe, as [`open`]; with [`OpenOptions::create`] a dropped call may have created the
/// `file://` directory.
pub async fn open_with(url: &str, options: &OpenOptions) -> Result<Opened> {
    match parse(url)? {
        Location::Memory => Ok(Opened {
            store: Arc::new(InMemory::new()),
            prefix: String::new(),
            kind: StoreKind::Memory,
            endpoint: None,
        }),
        Location::Directory(path) => {
            let shown = path.display();
            if options.create {
                std::fs::create_dir_all(&path)
                    .map_err(|e| Error::Config(format!("cannot create {shown}: {e}")))?;
            } else if !path.is_dir() {
                return Err(Error::NoStore {
                    named: Some(url.to_string()),
                    looked_in: Vec::new(),
                });
            }
            let fs = LocalFileSystem::new_with_prefix(&path)
                .map_err(|e| Error::Config(format!("cannot open {shown}: {e}")))?;
            Ok(Opened {
                store: Arc::new(fs),
                prefix: String::new(),
                kind: StoreKind::LocalFilesystem,
                endpoint: None,
            })
        }
        Location::S3 { bucket, prefix } => open_s3(&bucket, &prefix, options.timeout).await,
        Location::Azure { container, prefix } => open_azure(&container, &prefix, options.timeout),
        Location::Gcs { bucket, prefix } => open_gcs(&bucket, &prefix, options.timeout),
    }
}

/// The forms a store URL may take, for messages.
const ACCEPTED: &str = "expected s3://bucket/prefix, az://container/prefix, gs://bucket/prefix, \
     file:///absolute/path or memory://";

/// Where a store URL points, before anything is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) enum Location {
    /// `memory://` or `memory:`: a fresh in-memory store.
    Memory,
    /// `file:///absolute/path`: a directory, its path percent-decoded.
    Directory(std::path::PathBuf),
    /// `s3://bucket/prefix` (or Hadoop's `s3a://`): the prefix has no leading or trailing
    /// `/`, and is percent-decoded.
    S3 {
        /// The bucket.
        bucket: String,
        /// The root prefix inside it, possibly empty.
        prefix: String,
    },
    /// `az://container/prefix`, Azure Blob Storage: the prefix as for [`Location::S3`]; the
    /// account and endpoint come from the environment.
    Azure {
        /// The container.
        container: String,
        /// The root prefix inside it, possibly empty.
        prefix: String,
    },
    /// `gs://bucket/prefix`, Google Cloud Storage: the prefix as for [`Location::S3`]; the
    /// credentials and endpoint come from the environment.
    Gcs {
        /// The bucket.
        bucket: String,
        /// The root prefix inside it, possibly empty.
        prefix: String,
    },
}

/// Reads a store URL without opening anything: object_store's own parser
/// ([`ObjectStoreScheme::parse`](object_store::ObjectStoreScheme::parse)) says which store
/// it names and decodes the path; this refuses what cairn cannot open as the URL says.
///
/// - A `file://` URL must spell an absolute path right after `file://` (not `file:/x`,
///   `file://host/x` or a bare `file://`).
/// - `https://s3.….amazonaws.com/bucket/…` names an endpoint and a region as well as a bucket,
///   and cairn takes both from the environment: it is refused, pointing at `s3://`.
/// - No store URL has a user, password, port, query or fragment: an `s3://bucket:9000` would
///   otherwise lose its port without a word.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn parse(url: &str) -> Result<Location> {
    use object_store::ObjectStoreScheme as Scheme;
    let refused = || Error::Config(format!("{url:?}: {ACCEPTED}"));
    let parsed = url::Url::parse(url).map_err(|_| refused())?;
    let scheme = parsed.scheme();
    let after_slashes = url
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("file://"))
        .and_then(|_| url.get(7..));
    if scheme == "file" && !after_slashes.is_some_and(|r| r.starts_with('/')) {
        return Err(Error::Config(format!(
            "{url:?}: a file URL needs an absolute path, as in file:///var/lib/cairn"
        )));
    }
    let s3 = matches!(scheme, "s3" | "s3a");
    if s3 && parsed.host_str().is_none_or(str::is_empty) {
        return Err(Error::Config(format!("{url:?} names no bucket")));
    }
    let gs = scheme == "gs";
    if gs && parsed.host_str().is_none_or(str::is_empty) {
        return Err(Error::Config(format!("{url:?} names no bucket")));
    }
    let az = scheme == "az";
    if az && parsed.host_str().is_none_or(str::is_empty) {
        return Err(Error::Config(format!("{url:?} names no container")));
    }
    // `az://container@account.blob.core.windows.net/…` is Hadoop's form: the account is the
    // environment's here, as the endpoint is for s3://.
    if az && !parsed.username().is_empty() {
        return Err(Error::Config(format!(
            "{url:?}: write the container as az://container/prefix; the account comes from \
             the environment (AZURE_STORAGE_ACCOUNT_NAME)"
        )));
    }
    if az && parsed.host_str().is_some_and(|h| h.contains('.')) {
        return Err(Error::Config(format!(
            "{url:?}: an Azure container name has no '.'; write az://container/prefix"
        )));
    }
    if !parsed.username().is_empty()
        || parsed.password().is_some()
        || parsed.port().is_some()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
    {
        return Err(Error::Config(format!(
            "{url:?}: a store URL has no user, port, query or fragment (the S3 endpoint comes \
             from AWS_ENDPOINT_URL; write a '?' or '#' in a path as %3F or %23): {ACCEPTED}"
        )));
    }
    // The path first, so that the scheme's answer below can only be "unrecognised".
    object_store::path::Path::from_url_path(parsed.path())
        .map_err(|e| Error::Config(format!("{url:?}: {e}")))?;
    let (kind, path) = Scheme::parse(&parsed).map_err(|_| refused())?;
    match kind {
        Scheme::Memory if path.as_ref().is_empty() => Ok(Location::Memory),
        Scheme::Local => Ok(Location::Directory(
            std::path::Path::new("/").join(path.as_ref()),
        )),
        Scheme::AmazonS3 if s3 => Ok(Location::S3 {
            bucket: parsed.host_str().unwrap_or_default().to_string(),
            prefix: path.as_ref().to_string(),
        }),
        Scheme::AmazonS3 => Err(Error::Config(format!(
            "{url:?}: an https URL names an S3 endpoint and region, which cairn takes from the \
             environment (AWS_ENDPOINT_URL, AWS_REGION): write the bucket as s3://bucket/prefix"
        ))),
        Scheme::MicrosoftAzure if az => Ok(Location::Azure {
            container: parsed.host_str().unwrap_or_default().to_string(),
            prefix: path.as_ref().to_string(),
        }),
        Scheme::GoogleCloudStorage if gs => Ok(Location::Gcs {
            bucket: parsed.host_str().unwrap_or_default().to_string(),
            prefix: path.as_ref().to_string(),
        }),
        Scheme::MicrosoftAzure if scheme == "https" => Err(Error::Config(format!(
            "{url:?}: an https URL names an Azure account, which cairn takes from the \
             environment (AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ENDPOINT): write the \
             container as az://container/prefix"
        ))),
        _ => Err(refused()),
    }
}

/// Without the `aws` feature there is no S3 client: the URL is refused, naming the feature.
#[cfg(not(feature = "aws"))]
async fn open_s3(bucket: &str, _prefix: &str, _timeout: Duration) -> Result<Opened> {
    Err(Error::Config(format!(
        "s3://{bucket}: this build of cairn has no S3 support (enable its `aws` feature)"
    )))
}

/// Without the `azure` feature there is no Azure client: the URL is refused, naming the
/// feature.
#[cfg(not(feature = "azure"))]
fn open_azure(container: &str, _prefix: &str, _timeout: Duration) -> Result<Opened> {
    Err(Error::Config(format!(
        "az://{container}: this build of cairn has no Azure support (enable its `azure` feature)"
    )))
}

/// Without the `gcp` feature there is no GCS client: the URL is refused, naming the feature.
#[cfg(not(feature = "gcp"))]
fn open_gcs(bucket: &str, _prefix: &str, _timeout: Duration) -> Result<Opened> {
    Err(Error::Config(format!(
        "gs://{bucket}: this build of cairn has no Google Cloud Storage support (enable its \
         `gcp` feature)"
    )))
}

/// Opens a Google Cloud Storage bucket, configured from the `GOOGLE_*` environment as
/// object_store reads it (see the module docs), with the request and connect timeouts set
/// as for S3.
#[cfg(feature = "gcp")]
fn open_gcs(bucket: &str, prefix: &str, timeout: Duration) -> Result<Opened> {
    use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
    use object_store::ClientConfigKey;
    let builder = GoogleCloudStorageBuilder::from_env();
    let endpoint = builder
        .get_config_value(&GoogleConfigKey::BaseUrl)
        .unwrap_or_else(|| "https://storage.googleapis.com".to_string());
    let mut builder = builder
        .with_bucket_name(bucket)
        .with_retry(retry_within(timeout));
    for (key, value) in client_timeouts(timeout) {
        builder = builder.with_config(GoogleConfigKey::Client(key), value);
    }
    if endpoint.starts_with("http://") {
        builder = builder.with_config(GoogleConfigKey::Client(ClientConfigKey::AllowHttp), "true");
    }
    let gcs = builder
        .build()
        .map_err(|e| Error::Config(format!("gs://{bucket}: {e}")))?;
    Ok(Opened {
        store: Arc::new(gcs),
        prefix: prefix.to_string(),
        kind: StoreKind::Gcs,
        endpoint: Some(super::cause::endpoint_of(&endpoint).unwrap_or(endpoint)),
    })
}

/// Opens an Azure Blob container, configured from the `AZURE_*` environment as object_store
/// reads it (see the module docs). The request and connect timeouts are set as for S3,
/// without replacing any other client option the environment set (a proxy, say).
#[cfg(feature = "azure")]
fn open_azure(container: &str, prefix: &str, timeout: Duration) -> Result<Opened> {
    use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
    let builder = MicrosoftAzureBuilder::from_env();
    let setting = |key: AzureConfigKey| builder.get_config_value(&key);
    // object_store's reading of a boolean setting.
    let emulator = setting(AzureConfigKey::UseEmulator).is_some_and(|v| {
        ["true", "1", "on", "yes", "y"]
            .iter()
            .any(|t| v.eq_ignore_ascii_case(t))
    });
    let endpoint = if emulator {
        Some(
            std::env::var("AZURITE_BLOB_STORAGE_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:10000".to_string()),
        )
    } else {
        setting(AzureConfigKey::Endpoint).or_else(|| {
            setting(AzureConfigKey::AccountName)
                .map(|account| format!("https://{account}.blob.core.windows.net"))
        })
    };
    let plain_http = endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"));
    let mut builder = builder
        .with_container_name(container)
        .with_retry(retry_within(timeout));
    for (key, value) in client_timeouts(timeout) {
        builder = builder.with_config(AzureConfigKey::Client(key), value);
    }
    if plain_http {
        builder = builder.with_allow_http(true);
    }
    let azure = builder
        .build()
        .map_err(|e| Error::Config(format!("az://{container}: {e}")))?;
    Ok(Opened {
        store: Arc::new(azure),
        prefix: prefix.to_string(),
        kind: StoreKind::Azure,
        endpoint: endpoint.map(|e| super::cause::endpoint_of(&e).unwrap_or(e)),
    })
}

/// What the environment alone settles for an S3 client: the provider chain, were it built,
/// would return exactly this (see the module docs).
#[cfg(feature = "aws")]
#[derive(PartialEq, Eq)]
struct FromEnvironment {
    endpoint: Option<String>,
    region: String,
    key_id: String,
    secret: String,
    token: Option<String>,
}

#[cfg(feature = "aws")]
impl std::fmt::Debug for FromEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FromEnvironment")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// The S3 settings when the environment (`var`) settles all of them and no shared config
/// file exists (`config_file`); `None` when the provider chain must be asked. Mirrors the
/// chain's order: credentials and region from the environment come before any profile, and
/// an endpoint from the environment before the profile's, which a config file could still
/// override with `ignore_configured_endpoint_urls`.
#[cfg(feature = "aws")]
fn from_environment(
    var: impl Fn(&str) -> Option<String>,
    config_file: bool,
) -> Option<FromEnvironment> {
    let set = |k: &str| var(k).filter(|v| !v.is_empty());
    if config_file || set("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some() {
        return None;
    }
    Some(FromEnvironment {
        endpoint: set("AWS_ENDPOINT_URL_S3").or_else(|| set("AWS_ENDPOINT_URL")),
        region: set("AWS_REGION").or_else(|| set("AWS_DEFAULT_REGION"))?,
        key_id: set("AWS_ACCESS_KEY_ID")?,
        secret: set("AWS_SECRET_ACCESS_KEY")?,
        token: set("AWS_SESSION_TOKEN"),
    })
}

/// Whether the shared AWS config file exists (`AWS_CONFIG_FILE`, else `~/.aws/config`).
#[cfg(feature = "aws")]
fn config_file_exists() -> bool {
    let path = match std::env::var_os("AWS_CONFIG_FILE") {
        Some(p) => std::path::PathBuf::from(p),
        None => match std::env::var_os("HOME") {
            Some(home) => std::path::Path::new(&home).join(".aws").join("config"),
            // Without a home the chain finds no file either.
            None => return false,
        },
    };
    path.exists()
}

#[cfg(feature = "aws")]
async fn open_s3(bucket: &str, prefix: &str, timeout: Duration) -> Result<Opened> {
    let (endpoint, region, credentials) =
        match from_environment(|k| std::env::var(k).ok(), config_file_exists()) {
            Some(env) => {
                let static_credentials = aws_credential_types::Credentials::new(
                    env.key_id,
                    env.secret,
                    env.token,
                    None,
                    "Environment",
                );
                (
                    env.endpoint,
                    env.region,
                    Some(SharedCredentialsProvider::new(static_credentials)),
                )
            }
            None => {
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
                (endpoint, region, sdk.credentials_provider())
            }
        };
    let plain_http = endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"));
    let shown_endpoint = match &endpoint {
        Some(e) => super::cause::endpoint_of(e).or_else(|| Some(e.clone())),
        None => Some(format!("https://s3.{region}.amazonaws.com")),
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(region)
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .with_retry(retry_within(timeout))
        // Set before `with_allow_http`: `with_client_options` replaces every client option.
        .with_client_options(client_options(timeout, plain_http));
    if let Some(endpoint) = endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(plain_http)
            .with_virtual_hosted_style_request(false);
    }
    if let Some(provider) = credentials {
        builder = builder.with_credentials(super::aws::adapt_checked(provider).await?);
    }
    let s3 = builder
        .build()
        .map_err(|e| Error::Config(format!("s3://{bucket}: {e}")))?;
    Ok(Opened {
        store: Arc::new(s3),
        prefix: prefix.to_string(),
        kind: StoreKind::S3,
        endpoint: shown_endpoint,
    })
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    fn s3(bucket: &str, prefix: &str) -> Location {
        Location::S3 {
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    fn refusal(url: &str) -> String {
        match parse(url) {
            Err(Error::Config(m)) => m,
            other => panic!("{url}: expected a Config error, got {other:?}"),
        }
    }

    /// Each URL is refused with a message that contains `part`.
    fn refused_saying(urls: &[&str], part: &str) {
        for url in urls {
            let m = refusal(url);
            assert!(m.contains(part), "{url}: {m}");
        }
    }

    #[test]
    fn memory_is_spelled_with_or_without_slashes() {
        assert_eq!(parse("memory://").unwrap(), Location::Memory);
        assert_eq!(parse("memory:").unwrap(), Location::Memory);
        refused_saying(&["memory://host", "memory:///x", "memory:x"], ACCEPTED);
    }

    #[test]
    fn a_file_url_names_an_absolute_directory_percent_decoded() {
        let dir = |p: &str| Location::Directory(p.into());
        assert_eq!(
            parse("file:///var/lib/cairn").unwrap(),
            dir("/var/lib/cairn")
        );
        assert_eq!(
            parse("file:///var/lib/cairn/").unwrap(),
            dir("/var/lib/cairn")
        );
        assert_eq!(parse("file:///tmp/a%20b").unwrap(), dir("/tmp/a b"));
        assert_eq!(parse("file:///tmp/a b").unwrap(), dir("/tmp/a b"));
        assert_eq!(parse("file:///").unwrap(), dir("/"));
        refused_saying(
            &[
                "file://relative/x",
                "file:relative",
                "file:/tmp/x",
                "file://",
                // Multi-byte characters where "file://" would end.
                "file:€",
                "file:/é",
                "file:/éé",
            ],
            "needs an absolute path",
        );
        // object_store's path rules: no empty segment, valid UTF-8 once decoded.
        assert!(refusal("file:///tmp//x").contains("empty path segment"));
        let m = refusal("file:///tmp/%FF");
        assert!(m.to_lowercase().contains("utf"), "{m}");
    }

    #[test]
    fn an_s3_url_names_a_bucket_and_a_prefix_without_outer_slashes() {
        assert_eq!(parse("s3://bucket").unwrap(), s3("bucket", ""));
        assert_eq!(parse("s3://bucket/").unwrap(), s3("bucket", ""));
        assert_eq!(parse("s3://bucket/a/b/").unwrap(), s3("bucket", "a/b"));
        assert_eq!(parse("s3://bucket/a%20b").unwrap(), s3("bucket", "a b"));
        // Hadoop's spelling of the same thing.
        assert_eq!(parse("s3a://bucket/p").unwrap(), s3("bucket", "p"));
        for url in ["s3://", "s3:///prefix", "s3a://"] {
            assert_eq!(refusal(url), format!("{url:?} names no bucket"));
        }
    }

    #[test]
    fn an_az_url_names_a_container_and_a_prefix_without_outer_slashes() {
        let az = |container: &str, prefix: &str| Location::Azure {
            container: container.into(),
            prefix: prefix.into(),
        };
        assert_eq!(parse("az://logs").unwrap(), az("logs", ""));
        assert_eq!(parse("az://logs/").unwrap(), az("logs", ""));
        assert_eq!(parse("az://logs/a/b/").unwrap(), az("logs", "a/b"));
        assert_eq!(parse("az://logs/a%20b").unwrap(), az("logs", "a b"));
        for url in ["az://", "az:///prefix"] {
            assert_eq!(refusal(url), format!("{url:?} names no container"));
        }
        refused_saying(
            &["az://logs@account.blob.core.windows.net/p"],
            "the account comes from the environment",
        );
        refused_saying(&["az://my.container/p"], "has no '.'");
        refused_saying(
            &[
                "https://account.blob.core.windows.net/logs/p",
                "https://account.dfs.core.windows.net/logs",
            ],
            "write the container as az://container/prefix",
        );
        refused_saying(&["az://logs:1/p", "az://logs/p?sv=x"], "no user, port");
    }

    #[test]
    fn a_gs_url_names_a_bucket_and_a_prefix_without_outer_slashes() {
        let gs = |bucket: &str, prefix: &str| Location::Gcs {
            bucket: bucket.into(),
            prefix: prefix.into(),
        };
        assert_eq!(parse("gs://logs").unwrap(), gs("logs", ""));
        assert_eq!(parse("gs://logs/a/b/").unwrap(), gs("logs", "a/b"));
        assert_eq!(parse("gs://logs/a%20b").unwrap(), gs("logs", "a b"));
        for url in ["gs://", "gs:///prefix"] {
            assert_eq!(refusal(url), format!("{url:?} names no bucket"));
        }
        refused_saying(&["gs://logs:1/p", "gs://logs/p?x=1"], "no user, port");
    }

    #[cfg(feature = "gcp")]
    #[tokio::test]
    async fn a_gs_url_opens_a_gcs_client_with_the_endpoint_from_the_environment() {
        // No request is made: building the client reads the environment only. Without
        // credentials object_store falls back to application default credentials, fetched
        // at the first request.
        let opened = open("gs://logs/fleet/a").await.unwrap();
        assert_eq!(
            (opened.kind, opened.prefix.as_str()),
            (StoreKind::Gcs, "fleet/a")
        );
        assert!(
            opened.store.to_string().contains("logs"),
            "{}",
            opened.store
        );
    }

    #[test]
    fn an_https_s3_url_is_refused_since_its_endpoint_would_be_ignored() {
        refused_saying(
            &[
                "https://s3.amazonaws.com/bucket/p",
                "https://s3.eu-west-1.amazonaws.com/bucket",
                "https://bucket.s3.amazonaws.com/p",
                "https://account.r2.cloudflarestorage.com/bucket/p",
            ],
            "write the bucket as s3://bucket/prefix",
        );
    }

    #[test]
    fn other_schemes_and_url_parts_are_refused_naming_the_accepted_forms() {
        for url in [
            "ftp://nope",
            "https://storage.googleapis.com/bucket/p",
            "abfs://container/p",
            "adl://container/p",
            "azure://container/p",
            "http://example.com/p",
            "https://example.com/p",
            "/var/lib/cairn",
            "bucket/prefix",
            "",
        ] {
            let m = refusal(url);
            assert_eq!(m, format!("{url:?}: {ACCEPTED}"));
        }
        let extras = [
            "s3://bucket:9000/p",
            "s3://user@bucket/p",
            "s3://bucket/p?region=x",
            "file:///tmp/x#y",
        ];
        refused_saying(&extras, "no user, port, query or fragment");
        refused_saying(&extras, ACCEPTED);
    }

    #[tokio::test]
    async fn opening_a_file_url_creates_its_directory_only_when_told_to() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a b");
        let url = format!("file://{}", tmp.path().join("a%20b").display());
        let look = OpenOptions {
            create: false,
            ..Default::default()
        };
        match open_with(&url, &look).await {
            Err(Error::NoStore { named, .. }) => assert_eq!(named.as_deref(), Some(&*url)),
            other => panic!("expected NoStore, got {other:?}"),
        }
        assert!(!dir.exists());
        // The default does not create it either.
        assert!(matches!(open(&url).await, Err(Error::NoStore { .. })));
        assert!(!dir.exists());
        let create = OpenOptions {
            create: true,
            ..Default::default()
        };
        let opened = open_with(&url, &create).await.unwrap();
        assert!(dir.is_dir(), "the decoded path is the directory");
        assert_eq!(
            (opened.kind, opened.prefix.as_str()),
            (StoreKind::LocalFilesystem, "")
        );
        assert!(open_with(&url, &look).await.is_ok());
        assert_eq!(open("memory:").await.unwrap().kind, StoreKind::Memory);
    }

    #[cfg(not(feature = "azure"))]
    #[tokio::test]
    async fn without_the_azure_feature_an_az_url_is_refused_naming_it() {
        match open("az://logs/p").await {
            Err(Error::Config(m)) => assert!(m.contains("`azure` feature"), "{m}"),
            other => panic!("expected a Config error, got {other:?}"),
        }
    }

    #[cfg(not(feature = "aws"))]
    #[tokio::test]
    async fn without_the_aws_feature_an_s3_url_is_refused_naming_it() {
        match open("s3://bucket/p").await {
            Err(Error::Config(m)) => assert!(m.contains("`aws` feature"), "{m}"),
            other => panic!("expected a Config error, got {other:?}"),
        }
    }
}

#[cfg(all(test, feature = "aws"))]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        }
    }

    const LOCALSTACK: &[(&str, &str)] = &[
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
    ];

    #[test]
    fn static_credentials_a_region_and_no_config_file_skip_the_provider_chain() {
        let got = from_environment(env(LOCALSTACK), false).expect("settled by the environment");
        assert_eq!(
            got,
            FromEnvironment {
                endpoint: Some("http://127.0.0.1:4566".into()),
                region: "us-east-1".into(),
                key_id: "test".into(),
                secret: "secret".into(),
                token: None,
            }
        );
        // The S3-specific endpoint wins, as in the chain; the default region is a fallback.
        let vars = [
            ("AWS_ACCESS_KEY_ID", "k"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_SESSION_TOKEN", "t"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "http://a"),
            ("AWS_ENDPOINT_URL_S3", "https://b"),
        ];
        let got = from_environment(env(&vars), false).unwrap();
        assert_eq!(got.endpoint.as_deref(), Some("https://b"));
        assert_eq!(
            (got.region.as_str(), got.token.as_deref()),
            ("eu-west-1", Some("t"))
        );
        // No endpoint at all: real S3.
        let vars = [
            ("AWS_ACCESS_KEY_ID", "k"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_REGION", "us-east-1"),
        ];
        assert_eq!(from_environment(env(&vars), false).unwrap().endpoint, None);
    }

    #[test]
    fn anything_the_environment_does_not_settle_goes_to_the_provider_chain() {
        // A config file may name an endpoint or ignore the environment's.
        assert!(from_environment(env(LOCALSTACK), true).is_none());
        let without = |missing: &str| {
            let vars: Vec<(&str, &str)> = LOCALSTACK
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            from_environment(env(&vars), false)
        };
        assert!(
            without("AWS_ACCESS_KEY_ID").is_none(),
            "profile, SSO, IMDS…"
        );
        assert!(without("AWS_SECRET_ACCESS_KEY").is_none());
        assert!(
            without("AWS_REGION").is_none(),
            "the region may be the profile's"
        );
        let mut vars = LOCALSTACK.to_vec();
        vars.push(("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"));
        assert!(from_environment(env(&vars), false).is_none());
        // An empty value is no value.
        let mut vars = LOCALSTACK.to_vec();
        vars.retain(|(k, _)| *k != "AWS_ACCESS_KEY_ID");
        vars.push(("AWS_ACCESS_KEY_ID", ""));
        assert!(from_environment(env(&vars), false).is_none());
    }

    #[test]
    fn the_environment_summary_never_shows_the_secret() {
        let got = from_environment(env(LOCALSTACK), false).unwrap();
        let shown = format!("{got:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
