//! Shared test harness: the five backends, fresh namespaces, and handles on them.
//!
//! S3 backends are the servers `localstack/start.sh` runs (LocalStack on 127.0.0.1:4566,
//! moto on 127.0.0.1:5000, Ceph RGW on 127.0.0.1:7480, bucket `cairn-test`). A test that
//! needs one fails when the server does not answer, unless `CAIRN_SKIP_S3=1` says explicitly
//! to skip. Azurite (`localstack/azurite.sh`, on 127.0.0.1:10000, container `cairn-test`, the
//! emulator's well-known account) counts as one of them.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use cairn::manifest::Strategy;

use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

pub const BUCKET: &str = "cairn-test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Fs,
    LocalStack,
    Moto,
    /// Ceph RGW 16 (Debian's `radosgw`): honours `If-Match` only with the etag unquoted,
    /// which the probe (or, with a fixed strategy, the first replace) finds.
    Rgw,
    /// Azurite, Microsoft's Azure Storage emulator (Blob service), through object_store's
    /// Azure client.
    Azurite,
}

impl Backend {
    pub fn endpoint(self) -> Option<String> {
        let (var, default) = match self {
            Backend::LocalStack => ("CAIRN_LOCALSTACK_ENDPOINT", "http://127.0.0.1:4566"),
            Backend::Moto => ("CAIRN_MOTO_ENDPOINT", "http://127.0.0.1:5000"),
            Backend::Rgw => ("CAIRN_RGW_ENDPOINT", "http://127.0.0.1:7480"),
            Backend::Azurite => ("CAIRN_AZURITE_ENDPOINT", "http://127.0.0.1:10000"),
            _ => return None,
        };
        Some(std::env::var(var).unwrap_or_else(|_| default.to_string()))
    }

    /// The store URL of `prefix` in the test bucket (container) on this server, as the CLI
    /// takes it: `s3://cairn-test/prefix`, or `az://cairn-test/prefix` on Azurite.
    pub fn store_url(self, prefix: &str) -> String {
        match self {
            Backend::Azurite => format!("az://{BUCKET}/{prefix}"),
            _ => format!("s3://{BUCKET}/{prefix}"),
        }
    }

    /// The environment in which a `cairn` process reaches this server: the AWS settings of
    /// an S3 server, or Azurite's ([`azurite_env`]).
    pub fn cli_env(self) -> Vec<(&'static str, String)> {
        let endpoint = self
            .endpoint()
            .unwrap_or_else(|| panic!("{self:?} is not a server"));
        if self == Backend::Azurite {
            let mut env = azurite_env(&endpoint).to_vec();
            // Azurite answers on one Node.js thread: under a busy CI machine and many
            // processes at once a request can wait longer than the default 10 s. (Its blob
            // GC, which stalled it for tens of seconds, is put off by localstack/azurite.sh.)
            env.push(("CAIRN_TIMEOUT", "30s".into()));
            return env;
        }
        vec![
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// The strategies this backend supports.
    pub fn strategies(self) -> &'static [Strategy] {
        match self {
            Backend::Fs => &[Strategy::VersionChain],
            // moto's If-Match races under concurrency (tests/conformance.rs): no etag CAS.
            Backend::Moto => &[Strategy::VersionChain],
            _ => &[Strategy::EtagCas, Strategy::VersionChain],
        }
    }
}

/// A fresh, empty namespace on a backend: the conformance suite's [`cairn::conformance::Namespace`]
/// (a raw object store, a prefix inside it, handles on it), with the backend it is on and,
/// for the filesystem, the temporary directory it lives in.
pub struct Namespace {
    pub backend: Backend,
    inner: cairn::conformance::Namespace,
    _dir: Option<tempfile::TempDir>,
}

impl std::ops::Deref for Namespace {
    type Target = cairn::conformance::Namespace;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

/// `true` when S3 tests are explicitly opted out of.
pub fn s3_skipped() -> bool {
    std::env::var("CAIRN_SKIP_S3").is_ok_and(|v| v == "1")
}

/// A fresh namespace, or `None` if S3 tests are explicitly skipped. Panics (the test fails)
/// when an S3 server does not answer.
pub async fn namespace(backend: Backend) -> Option<Namespace> {
    let prefix = format!("t-{}", uuid::Uuid::new_v4());
    let (store, dir): (Arc<dyn ObjectStore>, _) = match backend {
        Backend::Memory => (Arc::new(InMemory::new()), None),
        Backend::Fs => {
            let dir = tempfile::tempdir().expect("temp dir");
            (
                Arc::new(LocalFileSystem::new_with_prefix(dir.path()).expect("fs store")),
                Some(dir),
            )
        }
        Backend::LocalStack | Backend::Moto | Backend::Rgw | Backend::Azurite => {
            if s3_skipped() {
                eprintln!("CAIRN_SKIP_S3=1: skipping {backend:?}");
                return None;
            }
            let endpoint = backend.endpoint().unwrap();
            let s3 = if backend == Backend::Azurite {
                azurite_store(&endpoint)
            } else {
                s3_store(&endpoint)
            };
            // Reachability: a listing must answer.
            use futures::StreamExt;
            let mut l = s3.list(Some(&object_store::path::Path::from("reachability")));
            if let Some(Err(e)) = l.next().await {
                panic!(
                    "{backend:?} at {endpoint} is not reachable ({e}). Start it with \
                     localstack/start.sh, or set CAIRN_SKIP_S3=1 to skip S3 tests explicitly."
                );
            }
            (s3, None)
        }
    };
    Some(Namespace {
        backend,
        inner: cairn::conformance::Namespace::new(store, prefix),
        _dir: dir,
    })
}

pub fn s3_store(endpoint: &str) -> Arc<dyn ObjectStore> {
    Arc::new(
        AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_endpoint(endpoint)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_virtual_hosted_style_request(false)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_retry(test_retry())
            .with_client_options(test_client())
            .build()
            .expect("s3 store"),
    )
}

/// Retries of the test servers' clients: three, within 10 s.
fn test_retry() -> RetryConfig {
    RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

/// The test servers' HTTP client: plain HTTP, 10 s a request.
fn test_client() -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(true)
        .with_timeout(Duration::from_secs(10))
}

/// The emulator's account and its published key (the same in every Azurite).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The test container on Azurite at `endpoint`, addressed path-style as Azurite expects
/// (`http://host:port/account/container/blob`).
pub fn azurite_store(endpoint: &str) -> Arc<dyn ObjectStore> {
    Arc::new(
        MicrosoftAzureBuilder::new()
            .with_account(AZURITE_ACCOUNT)
            .with_access_key(AZURITE_KEY)
            .with_endpoint(format!(
                "{}/{AZURITE_ACCOUNT}",
                endpoint.trim_end_matches('/')
            ))
            .with_container_name(BUCKET)
            .with_allow_http(true)
            .with_retry(test_retry())
            .with_client_options(test_client())
            .build()
            .expect("azurite store"),
    )
}

/// The environment in which `cairn --store az://cairn-test/…` reaches Azurite at `endpoint`,
/// as object_store reads it.
pub fn azurite_env(endpoint: &str) -> [(&'static str, String); 2] {
    [
        ("AZURE_STORAGE_USE_EMULATOR", "true".to_string()),
        ("AZURITE_BLOB_STORAGE_URL", endpoint.to_string()),
    ]
}

/// One line of a log that test jobs write: `WHAT NUMBER NODE NANOSECONDS`.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub what: String,
    /// A fencing token or a turn number.
    pub number: u64,
    pub node: String,
    pub at_ns: u128,
}

/// Reads such a log (missing: empty), sorted by time.
pub fn parse_log(path: &std::path::Path) -> Vec<LogLine> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<LogLine> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 4, "malformed log line {l:?}");
            LogLine {
                what: f[0].to_string(),
                number: f[1].parse().expect("a number"),
                node: f[2].to_string(),
                at_ns: f[3].parse().expect("nanoseconds"),
            }
        })
        .collect();
    lines.sort_by_key(|l| l.at_ns);
    lines
}

/// Every node of `nodes` tries to acquire `lock` at once (a ttl of 30 s): the leases of those
/// that got it.
pub async fn race_for(nodes: &[cairn::Cairn], lock: &str) -> Vec<cairn::HeldLock> {
    let name = cairn::Name::new(lock).unwrap();
    let locks: Vec<_> = nodes
        .iter()
        .map(|c| {
            c.locks(cairn::LockOptions::with_ttl(Duration::from_secs(30)))
                .unwrap()
        })
        .collect();
    let tries = locks.iter().map(|l| l.try_acquire(&name));
    let mut held = Vec::new();
    for r in futures::future::join_all(tries).await {
        if let cairn::Acquire::Held(lease) = r.unwrap() {
            held.push(lease);
        }
    }
    held
}
