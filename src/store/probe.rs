//! The capability probe: before cairn trusts a store, it checks on a scratch key that the
//! store honours the preconditions the protocol relies on.
//!
//! 1. create-if-absent succeeds on a fresh key;
//! 2. a second create-if-absent of the same key fails (else: refused);
//! 3. replace with the current etag succeeds (unsupported: no etag CAS, use the chain);
//! 4. replace with a stale etag fails (else: refused);
//! 5. a conditional GET with the current etag answers "unchanged" (else: revalidation falls
//!    back to full reads).
//!
//! The scratch object is deleted afterwards.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::time::Instant;

use super::{keys, CreateOutcome, ReadIfChanged, ReplaceOutcome, Store, WriteId};
use crate::error::{Error, Result};

/// What the probe found.
#[derive(Debug, Clone, Serialize)]
pub struct Capabilities {
    /// `If-None-Match: *` is honoured. Required.
    pub create_if_absent: bool,
    /// `If-Match: <etag>` is supported and honoured: the etag CAS strategy can be used.
    pub replace_if_match: bool,
    /// Conditional GET answers 304 for an unchanged object.
    pub conditional_get: bool,
    /// Median round trip of the probe's requests.
    #[serde(with = "crate::serde_duration_ms", rename = "round_trip_ms")]
    pub round_trip: Duration,
    /// Each check with its result.
    pub checks: Vec<Check>,
}

/// One probe step.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Whether the store behaved as the protocol needs.
    pub passed: bool,
    /// What happened.
    pub detail: String,
}

impl Store {
    /// Probes this store on a scratch key. Returns [`Error::StoreRefused`] when the store
    /// ignores a precondition, naming the check that failed.
    pub async fn probe(&self, rng: &mut impl rand::Rng) -> Result<Capabilities> {
        let id = WriteId::random(rng);
        let key = keys::probe(&id.0);
        let result = self.probe_on(&key, rng).await;
        // Best effort: a scratch object left behind harms nothing.
        let _ = self.delete(&key).await;
        result
    }

    async fn probe_on(&self, key: &keys::Key, rng: &mut impl rand::Rng) -> Result<Capabilities> {
        let mut checks = Vec::new();
        let mut times = Vec::new();
        let body = |id: &WriteId| Bytes::from(format!(r#"{{"probe":true,"write_id":"{}"}}"#, id.0));

        // 1 & 2: create-if-absent, twice.
        let first = WriteId::random(rng);
        let t = Instant::now();
        let first_etag = match self.create(key, body(&first), &first).await? {
            CreateOutcome::Created { etag } => etag,
            CreateOutcome::Exists { .. } => {
                return Err(Error::StoreRefused {
                    check: "create-if-absent on a fresh key",
                    detail: "a fresh random key was reported to exist".into(),
                })
            }
        };
        times.push(t.elapsed());
        checks.push(Check {
            name: "create-if-absent on a fresh key",
            passed: true,
            detail: "created".into(),
        });
        let second = WriteId::random(rng);
        let t = Instant::now();
        match self.create(key, body(&second), &second).await {
            Ok(CreateOutcome::Exists { .. }) => {}
            Ok(CreateOutcome::Created { .. }) => return Err(Error::StoreRefused {
                check: "create-if-absent twice",
                detail:
                    "the second create of the same key succeeded: the store ignores If-None-Match"
                        .into(),
            }),
            Err(e @ Error::Unsupported { .. }) => {
                return Err(Error::StoreRefused {
                    check: "create-if-absent twice",
                    detail: e.to_string(),
                })
            }
            Err(e) => return Err(e),
        }
        times.push(t.elapsed());
        checks.push(Check {
            name: "create-if-absent twice",
            passed: true,
            detail: "second create refused".into(),
        });

        // 3 & 4: replace with the current etag, then with the stale one.
        let mut replace_if_match = false;
        match first_etag.as_deref() {
            None => checks.push(Check {
                name: "replace with current etag",
                passed: false,
                detail: "the store reports no etags".into(),
            }),
            Some(etag) => {
                let third = WriteId::random(rng);
                let t = Instant::now();
                match self.replace(key, body(&third), &third, etag).await {
                    Ok(ReplaceOutcome::Replaced { .. }) => {
                        times.push(t.elapsed());
                        checks.push(Check {
                            name: "replace with current etag",
                            passed: true,
                            detail: "replaced".into(),
                        });
                        let fourth = WriteId::random(rng);
                        match self.replace(key, body(&fourth), &fourth, etag).await? {
                            ReplaceOutcome::Conflict { .. } => {
                                replace_if_match = true;
                                checks.push(Check {
                                    name: "replace with stale etag",
                                    passed: true,
                                    detail: "refused".into(),
                                });
                            }
                            ReplaceOutcome::Replaced { .. } => {
                                return Err(Error::StoreRefused {
                                    check: "replace with stale etag",
                                    detail: "a replace with a stale etag succeeded: the store ignores If-Match".into(),
                                })
                            }
                        }
                    }
                    Ok(ReplaceOutcome::Conflict { .. }) => {
                        return Err(Error::StoreRefused {
                            check: "replace with current etag",
                            detail: "a replace with the current etag was refused".into(),
                        })
                    }
                    Err(Error::Unsupported { operation, .. }) => checks.push(Check {
                        name: "replace with current etag",
                        passed: false,
                        detail: format!(
                            "not supported ({operation}): the version chain will be used"
                        ),
                    }),
                    Err(e) => return Err(e),
                }
            }
        }

        // 5: conditional GET.
        let current = self.read(key).await?;
        let conditional_get = match current.as_ref().and_then(|o| o.etag.as_deref()) {
            Some(etag) => {
                let t = Instant::now();
                let r = self.read_if_changed(key, etag).await?;
                times.push(t.elapsed());
                matches!(r, ReadIfChanged::Unchanged)
            }
            None => false,
        };
        checks.push(Check {
            name: "conditional GET",
            passed: conditional_get,
            detail: if conditional_get {
                "unchanged object answered without a body".into()
            } else {
                "not honoured: revalidation reads whole objects".into()
            },
        });

        times.sort();
        Ok(Capabilities {
            create_if_absent: true,
            replace_if_match,
            conditional_get,
            round_trip: times.get(times.len() / 2).copied().unwrap_or_default(),
            checks,
        })
    }
}
