//! The `cairn` binary end to end.

mod common;

use std::process::Command;

use common::{s3_skipped, Backend};

fn cairn(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.current_dir(dir)
        .env_remove("CAIRN_STORE")
        .env_remove("CAIRN_NODE")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

#[test]
fn doctor_with_no_store_uses_a_local_directory_and_the_version_chain() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn(dir.path())
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["strategy"], "version-chain");
    assert_eq!(report["capabilities"]["create_if_absent"], true);
    assert!(report["store"].as_str().unwrap().ends_with("/.cairn"));
    assert!(dir.path().join(".cairn").is_dir());
}

#[test]
fn doctor_against_localstack_chooses_etag_cas() {
    if s3_skipped() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = cairn(dir.path())
        .args(["doctor", "--json", "--store", "s3://cairn-test/cli-doctor"])
        .env("AWS_ENDPOINT_URL", Backend::LocalStack.endpoint().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["strategy"], "etag-cas");
    assert_eq!(report["capabilities"]["replace_if_match"], true);
    assert_eq!(report["capabilities"]["conditional_get"], true);
}

#[test]
fn bad_store_url_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn(dir.path())
        .args(["doctor", "--store", "ftp://nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected s3://"));
}
