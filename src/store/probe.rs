//! The capability probe: before cairn trusts a store, it checks on a scratch key that the
//! store honours the preconditions the protocol relies on.
//!
//! 1. create-if-absent succeeds on a fresh key;
//! 2. a second create-if-absent of the same key fails (else: refused);
//! 3. replace with the current etag succeeds (unsupported: no etag CAS, use the chain). The
//!    etag goes into `If-Match` as the store reported it; a store that answers 412 to that
//!    while the object is still at that etag does not accept the form, and the other forms
//!    ([`IfMatchForm`]) are tried in turn. If none is honoured, the version chain is used;
//! 4. replace with a stale etag, in the form that worked, fails (else: refused). Only then is
//!    that form set on the store as verified (a handle that did not probe runs steps 1, 3
//!    and 4 on a scratch key of its own at its first replace refused that way:
//!    [`Store::replace`]);
//! 5. a conditional GET with the current etag answers "unchanged" (else: revalidation falls
//!    back to full reads).
//!
//! Those checks are sequential, and a store can honour a precondition one request at a time
//! yet let concurrent conditional PUTs of one key all succeed (a check-then-write race
//! inside the server: three concurrent creates all answered 200 on SeaweedFS). Six nodes
//! racing for a fresh lock would then all hold it with token 1. So the probe also races:
//!
//! 6. 8 concurrent creates of one fresh scratch key: exactly one may win (else:
//!    refused, whatever the strategy: both rely on create-if-absent);
//! 7. where `If-Match` passed steps 3 and 4, 8 concurrent replaces of one scratch
//!    key with the same (current) etag: exactly one may win. Else `If-Match` is not to be
//!    trusted, but create-if-absent is (step 6), so the probe reports no `If-Match` and the
//!    version chain is used, as on a store without `If-Match`: a slower protocol, not a
//!    refused store. (A prefix that already records etag CAS is then refused by
//!    [`crate::CairnBuilder::build`], since the store cannot run it.)
//!
//! Cost: the probe runs once per prefix (the first node, then only `cairn doctor`); the races
//! add 2 × 8 conditional PUTs (and a read-back for each loser), sent at once, so
//! about four round trips of latency.
//!
//! The scratch objects are deleted afterwards.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use super::{
    keys, quoted_list, CreateOutcome, Expected, IfMatchForm, ReadIfChanged, ReplaceAttempt,
    ReplaceOutcome, Store, WriteId,
};
use crate::error::{Error, Result};

/// What the probe found.
#[derive(Debug, Clone, Serialize)]
pub struct Capabilities {
    /// `If-None-Match: *` is honoured. Required.
    pub create_if_absent: bool,
    /// `If-Match: <etag>` is supported and honoured: the etag CAS strategy can be used.
    pub replace_if_match: bool,
    /// The form of the etag that `If-Match` honours (`None` when it honours none). The probe
    /// sets it on the store it probed.
    pub if_match_form: Option<IfMatchForm>,
    /// Conditional GET answers 304 for an unchanged object.
    pub conditional_get: bool,
    /// Median round trip of the probe's requests.
    #[serde(with = "crate::serde_duration_ms", rename = "round_trip_ms")]
    pub round_trip: Duration,
    /// Each check with its result.
    pub checks: Vec<Check>,
}

impl Capabilities {
    /// Why the probe's findings lead to the strategy they do, in a sentence for reports.
    pub fn reason(&self) -> String {
        match self.if_match_form {
            Some(IfMatchForm::AsReported) if self.replace_if_match => {
                "If-Match is honoured: etag CAS, one request per transition".into()
            }
            Some(form) if self.replace_if_match => format!(
                "If-Match is honoured with the etag {}: etag CAS, one request per transition",
                form.describe()
            ),
            _ => {
                let why = self
                    .checks
                    .iter()
                    .find(|c| (c.name == REPLACE_CURRENT || c.name == RACE_REPLACE) && !c.passed)
                    .map_or("If-Match is not honoured", |c| c.detail.as_str());
                format!("{why}; create-if-absent is honoured, so the version chain is used")
            }
        }
    }
}

const REPLACE_CURRENT: &str = "replace with current etag";
const REPLACE_STALE: &str = "replace with stale etag";
/// The name of the probe's concurrent-create check (step 6).
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const RACE_CREATE: &str = "concurrent create-if-absent";
/// The name of the probe's concurrent-replace check (step 7).
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const RACE_REPLACE: &str = "concurrent replace (If-Match)";

/// How many conditional PUTs of one key the probe sends at once (steps 6 and 7).
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const RACERS: usize = 8;

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
    ///
    /// # Cancel safety
    ///
    /// Dropping it may leave its scratch objects under `_probe/` (harmless; any lifecycle rule
    /// may expire them). It records nothing: the protocol record is written by
    /// [`crate::Cairn`]'s build, after the probe.
    pub async fn probe(&self) -> Result<Capabilities> {
        use rand::SeedableRng;
        self.probe_with(&mut rand::rngs::StdRng::from_os_rng())
            .await
    }

    /// [`Store::probe`] drawing its scratch key from `rng` (the handle's seeded source).
    pub(crate) async fn probe_with(&self, rng: &mut impl rand::Rng) -> Result<Capabilities> {
        let id = WriteId::random(rng);
        let key = keys::probe(&id.0);
        let race_key = keys::probe(&format!("{}-race", id.0));
        let result = self.probe_on(&key, &race_key, rng).await;
        // Best effort: a scratch object left behind harms nothing.
        let _ = self.delete(&key).await;
        let _ = self.delete(&race_key).await;
        result
    }

    async fn probe_on(
        &self,
        key: &keys::Key,
        race_key: &keys::Key,
        rng: &mut impl rand::Rng,
    ) -> Result<Capabilities> {
        let mut checks = Vec::new();
        let mut times = Vec::new();

        // 1 & 2: create-if-absent, twice.
        let first = WriteId::random(rng);
        let t = self.clock().monotonic();
        let (first_etag, first_version) = match self.create(key, probe_body(&first), &first).await?
        {
            CreateOutcome::Created { etag, version } => (etag, version),
            CreateOutcome::Exists { .. } => {
                return Err(Error::StoreRefused {
                    check: "create-if-absent on a fresh key",
                    detail: "a fresh random key was reported to exist".into(),
                })
            }
        };
        times.push(self.clock().monotonic().saturating_duration_since(t));
        checks.push(Check {
            name: "create-if-absent on a fresh key",
            passed: true,
            detail: "created".into(),
        });
        let second = WriteId::random(rng);
        let t = self.clock().monotonic();
        match self.create(key, probe_body(&second), &second).await {
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
        times.push(self.clock().monotonic().saturating_duration_since(t));
        checks.push(Check {
            name: "create-if-absent twice",
            passed: true,
            detail: "second create refused".into(),
        });

        // 6: concurrent creates of one fresh key.
        let racers: Vec<WriteId> = (0..RACERS).map(|_| WriteId::random(rng)).collect();
        checks.push(self.race_creates(race_key, &racers).await?);

        // 3 & 4: replace with the current etag, then with the stale one.
        let if_match_form = match first_etag.as_deref() {
            None => {
                checks.push(Check {
                    name: REPLACE_CURRENT,
                    passed: false,
                    detail: "the store reports no etags".into(),
                });
                None
            }
            Some(etag) => {
                let mut ids = || WriteId::random(rng);
                let expected = Expected {
                    etag,
                    version: first_version.as_deref(),
                };
                let (found, mut form) = self
                    .probe_if_match(key, expected, &mut ids, &mut times)
                    .await?;
                checks.extend(found);
                // 7: concurrent replaces with the same etag, in the form that worked.
                if let Some(f) = form {
                    let racers: Vec<WriteId> = (0..RACERS).map(|_| ids()).collect();
                    let check = self.race_replaces(key, f, &racers).await?;
                    if !check.passed {
                        form = None;
                    }
                    checks.push(check);
                }
                self.record_form_check(form).await;
                form
            }
        };
        let replace_if_match = if_match_form.is_some();

        // 5: conditional GET.
        let current = self.read(key).await?;
        let conditional_get = match current.as_ref().and_then(|o| o.etag.as_deref()) {
            Some(etag) => {
                let t = self.clock().monotonic();
                let r = self.read_if_changed(key, etag).await?;
                times.push(self.clock().monotonic().saturating_duration_since(t));
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
            if_match_form,
            conditional_get,
            round_trip: times.get(times.len() / 2).copied().unwrap_or_default(),
            checks,
        })
    }

    /// Step 6: one create of the fresh `key` per racer, all sent at once. Exactly one may
    /// win; else [`Error::StoreRefused`].
    async fn race_creates(&self, key: &keys::Key, racers: &[WriteId]) -> Result<Check> {
        let sent = racers.iter().map(|id| self.create(key, probe_body(id), id));
        let mut winners = 0usize;
        for outcome in futures::future::join_all(sent).await {
            if let CreateOutcome::Created { .. } = outcome? {
                winners = winners.saturating_add(1);
            }
        }
        if winners != 1 {
            return Err(Error::StoreRefused {
                check: RACE_CREATE,
                detail: format!(
                    "{winners} of {} concurrent creates (If-None-Match: *) of one fresh key \
                     succeeded, where exactly one may: the store does not apply the \
                     precondition atomically",
                    racers.len()
                ),
            });
        }
        Ok(Check {
            name: RACE_CREATE,
            passed: true,
            detail: format!("{} at once: exactly one won", racers.len()),
        })
    }

    /// Step 7: one replace of `key` per racer, all with its current etag in `form`, sent at
    /// once. The check passes when exactly one wins.
    async fn race_replaces(
        &self,
        key: &keys::Key,
        form: IfMatchForm,
        racers: &[WriteId],
    ) -> Result<Check> {
        let Some((etag, version)) = self
            .read(key)
            .await?
            .and_then(|o| Some((o.etag?, o.version)))
        else {
            return Ok(Check {
                name: RACE_REPLACE,
                passed: false,
                detail: "the scratch object has no etag to race on".into(),
            });
        };
        let expected = Expected {
            etag: &etag,
            version: version.as_deref(),
        };
        let sent = racers
            .iter()
            .map(|id| self.replace_as(key, probe_body(id), id, expected, form, true));
        let mut winners = 0usize;
        for attempt in futures::future::join_all(sent).await {
            if let ReplaceAttempt::Decided(ReplaceOutcome::Replaced { .. }) = attempt? {
                winners = winners.saturating_add(1);
            }
        }
        let n = racers.len();
        Ok(if winners == 1 {
            Check {
                name: RACE_REPLACE,
                passed: true,
                detail: format!("{n} at once with the same etag: exactly one won"),
            }
        } else {
            Check {
                name: RACE_REPLACE,
                passed: false,
                detail: format!(
                    "{winners} of {n} concurrent replaces with the same etag succeeded, where \
                     exactly one may: If-Match is not applied atomically"
                ),
            }
        })
    }

    /// Steps 3 and 4 on `key`, whose object is at `etag`: finds a form in which the store
    /// honours `If-Match` with the current etag, then checks that it refuses the stale etag
    /// in that form. Returns the checks and the form (`None`:
    /// no form is honoured, the version chain it is).
    async fn probe_if_match(
        &self,
        key: &keys::Key,
        expected: Expected<'_>,
        ids: &mut impl FnMut() -> WriteId,
        times: &mut Vec<Duration>,
    ) -> Result<(Vec<Check>, Option<IfMatchForm>)> {
        let etag = expected.etag;
        let (check, form) = self.probe_replace(key, expected, ids, times).await?;
        let mut checks = vec![check];
        let Some(form) = form else {
            return Ok((checks, None));
        };
        let stale = ids();
        match self
            .replace_as(key, probe_body(&stale), &stale, expected, form, false)
            .await?
        {
            ReplaceAttempt::Decided(ReplaceOutcome::Conflict { .. }) => {
                checks.push(Check {
                    name: REPLACE_STALE,
                    passed: true,
                    detail: "refused".into(),
                });
                Ok((checks, Some(form)))
            }
            ReplaceAttempt::Decided(ReplaceOutcome::Replaced { .. }) => Err(Error::StoreRefused {
                check: REPLACE_STALE,
                detail: format!(
                    "a replace with a stale etag (If-Match: {}) succeeded: the store ignores \
                     If-Match",
                    form.apply(etag)
                ),
            }),
            ReplaceAttempt::FormRefused { .. } => Err(Error::StoreRefused {
                check: REPLACE_STALE,
                detail: "after a replace the object still had its old etag: etags do not tell \
                         versions apart"
                    .into(),
            }),
        }
    }

    /// Step 3: replaces the object at `etag`, sending the etag as reported and then, while
    /// the store answers 412 with the object still at `etag`, in each other form. Returns the
    /// check and the form that was honoured.
    async fn probe_replace(
        &self,
        key: &keys::Key,
        expected: Expected<'_>,
        ids: &mut impl FnMut() -> WriteId,
        times: &mut Vec<Duration>,
    ) -> Result<(Check, Option<IfMatchForm>)> {
        let etag = expected.etag;
        let mut refused: Vec<String> = Vec::new();
        let forms = std::iter::once(IfMatchForm::AsReported).chain(IfMatchForm::alternatives(etag));
        for form in forms {
            let id = ids();
            let t = self.clock().monotonic();
            match self
                .replace_as(key, probe_body(&id), &id, expected, form, false)
                .await
            {
                Ok(ReplaceAttempt::Decided(ReplaceOutcome::Replaced { .. })) => {
                    times.push(self.clock().monotonic().saturating_duration_since(t));
                    let detail = if refused.is_empty() {
                        "replaced".to_string()
                    } else {
                        format!(
                            "replaced with the etag {} (If-Match: {}), after 412 Precondition \
                             Failed to {} while the object was still at that etag",
                            form.describe(),
                            form.apply(etag),
                            quoted_list(&refused)
                        )
                    };
                    let check = Check {
                        name: REPLACE_CURRENT,
                        passed: true,
                        detail,
                    };
                    return Ok((check, Some(form)));
                }
                Ok(ReplaceAttempt::Decided(ReplaceOutcome::Conflict { .. })) => {
                    return Err(Error::StoreRefused {
                        check: REPLACE_CURRENT,
                        detail: "a replace with the current etag was refused, and the object \
                                 changed"
                            .into(),
                    })
                }
                Ok(ReplaceAttempt::FormRefused { sent }) => refused.push(sent),
                Err(Error::Unsupported { operation, .. }) => {
                    let check = Check {
                        name: REPLACE_CURRENT,
                        passed: false,
                        detail: format!("not supported ({operation})"),
                    };
                    return Ok((check, None));
                }
                Err(e) => return Err(e),
            }
        }
        let check = Check {
            name: REPLACE_CURRENT,
            passed: false,
            detail: format!(
                "not honoured: the store answered 412 Precondition Failed to {} while the \
                 object was still at that etag",
                quoted_list(&refused)
            ),
        };
        Ok((check, None))
    }

    /// Steps 1, 3 and 4 of the probe on a scratch key of their own, for
    /// [`Store::replace`] after a 412 with the object unchanged: the form in which the store
    /// honours `If-Match` (and refuses a stale etag), if any. The scratch write ids derive from
    /// `seed`, itself unique. The scratch object is deleted afterwards.
    pub(super) async fn search_if_match_form(&self, seed: &WriteId) -> Result<Option<IfMatchForm>> {
        let mut n = 0u32;
        let mut ids = || {
            n = n.saturating_add(1);
            WriteId(format!("{}-if-match-{n}", seed.0))
        };
        let first = ids();
        let key = keys::probe(&first.0);
        let result = match self.create(&key, probe_body(&first), &first).await {
            Ok(CreateOutcome::Created {
                etag: Some(etag),
                version,
            }) => {
                let expected = Expected {
                    etag: &etag,
                    version: version.as_deref(),
                };
                self.probe_if_match(&key, expected, &mut ids, &mut Vec::new())
                    .await
                    .map(|(_, form)| form)
            }
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        };
        // Best effort: a scratch object left behind harms nothing.
        let _ = self.delete(&key).await;
        result
    }
}

/// The scratch object's body: a JSON object with the write id, as every cairn object has.
fn probe_body(id: &WriteId) -> Bytes {
    Bytes::from(format!(r#"{{"probe":true,"write_id":"{}"}}"#, id.0))
}
