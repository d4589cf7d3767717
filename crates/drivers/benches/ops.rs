//! A thin wrapper over `cairn_drivers::bench` (the code behind `cairn bench`), for the test servers:
//!
//! ```sh
//! cargo bench --bench ops                          # memory and local filesystem
//! localstack/start.sh && cargo bench --bench ops -- localstack moto
//! cargo bench --bench ops -- memory --ops 1000 --nodes 1,4
//! ```
//!
//! On your own bucket, use the CLI: `cairn bench --store s3://bucket/prefix`.

use std::sync::Arc;
use std::time::Duration;

use cairn_drivers::bench::{self, BenchOptions};
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::{ClientOptions, ObjectStore};

fn s3(endpoint: &str) -> Arc<dyn ObjectStore> {
    Arc::new(
        AmazonS3Builder::new()
            .with_bucket_name("cairn-test")
            .with_region("us-east-1")
            .with_endpoint(endpoint)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_virtual_hosted_style_request(false)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_client_options(ClientOptions::new().with_allow_http(true))
            .build()
            .expect("s3 store"),
    )
}

#[tokio::main]
async fn main() {
    let mut options = BenchOptions::default();
    let mut backends = Vec::new();
    let mut it = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(a) = it.next() {
        match a.as_str() {
            "--ops" => options.ops = it.next().and_then(|n| n.parse().ok()).expect("--ops N"),
            "--nodes" => {
                options.nodes = it
                    .next()
                    .map(|l| l.split(',').filter_map(|n| n.parse().ok()).collect())
                    .expect("--nodes 1,4,16")
            }
            "--contention-for-ms" => {
                options.contention_for = Duration::from_millis(
                    it.next()
                        .and_then(|n| n.parse().ok())
                        .expect("--contention-for-ms N"),
                )
            }
            "--hold-ms" => {
                options.hold = Duration::from_millis(
                    it.next().and_then(|n| n.parse().ok()).expect("--hold-ms N"),
                )
            }
            b => backends.push(b.to_string()),
        }
    }
    if backends.is_empty() {
        backends = vec!["memory".into(), "fs".into()];
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    for backend in backends {
        let store: Arc<dyn ObjectStore> = match backend.as_str() {
            "memory" => Arc::new(object_store::memory::InMemory::new()),
            "fs" => Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(tmp.path()).expect("fs"),
            ),
            "localstack" => s3("http://127.0.0.1:4566"),
            "moto" => s3("http://127.0.0.1:5000"),
            other => panic!("unknown backend {other:?}: memory, fs, localstack or moto"),
        };
        let report = bench::run(store, "", &backend, &options, &())
            .await
            .expect("benchmark");
        println!("\n{}", report.table());
    }
}
