//! Opening a store by URL: a `file://` directory that does not exist is an error unless the
//! caller asks for it to be created, so that a typo does not leave a node coordinating alone.

use cairn::error::Error;
use cairn::store::url::OpenOptions;
use cairn::Cairn;

#[tokio::test]
async fn a_missing_directory_is_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo").join("dir");
    let url = format!("file://{}", typo.display());
    match Cairn::open(&url).await {
        Err(Error::NoStore { named, .. }) => assert_eq!(named.as_deref(), Some(url.as_str())),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened a directory that does not exist"),
    }
    assert!(!typo.exists() && !dir.path().join("typo").exists());

    let create = OpenOptions {
        create: true,
        ..Default::default()
    };
    let cairn = Cairn::open_with(&url, &create)
        .await
        .unwrap()
        .node("a")
        .unwrap()
        .build()
        .await
        .unwrap();
    assert!(typo.is_dir());
    drop(cairn);
    // Now it exists: a plain open works.
    Cairn::open(&url)
        .await
        .unwrap()
        .node("b")
        .unwrap()
        .build()
        .await
        .unwrap();
}
