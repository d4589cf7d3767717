//! Adapts `aws-config`'s credential provider chain to object_store's `CredentialProvider`,
//! refreshing before the credentials expire.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::aws::{AwsCredential, AwsCredentialProvider};
use object_store::CredentialProvider;
use tokio::sync::Mutex;

use crate::error::Error;

/// Credentials are fetched again when fewer than this remain before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// The adapter. Its `Debug` output never includes a credential.
struct AwsConfigCredentials {
    provider: SharedCredentialsProvider,
    cached: Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

impl std::fmt::Debug for AwsConfigCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsConfigCredentials")
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
fn adapt(provider: SharedCredentialsProvider) -> AwsCredentialProvider {
    Arc::new(AwsConfigCredentials {
        provider,
        cached: Mutex::new(None),
    })
}

/// Loads credentials once, before any request: a missing credential is a configuration
/// error to report at once ([`Error::NoCredentials`]), not a request failure to retry. The
/// adapter starts with what was loaded. Other failures (a provider timing out, an expired
/// session) are left to the first request, which reports them.
pub(super) async fn adapt_checked(
    provider: SharedCredentialsProvider,
) -> crate::Result<AwsCredentialProvider> {
    let cached = match provider.provide_credentials().await {
        Ok(creds) => Some((Arc::new(credential(&creds)), creds.expiry())),
        Err(e @ CredentialsError::CredentialsNotLoaded(_)) => {
            return Err(Error::NoCredentials {
                detail: chain_text(&e),
            })
        }
        Err(e) => {
            tracing::debug!(error = %chain_text(&e), "credentials not loaded yet");
            None
        }
    };
    Ok(Arc::new(AwsConfigCredentials {
        provider,
        cached: Mutex::new(cached),
    }))
}

fn credential(creds: &aws_credential_types::Credentials) -> AwsCredential {
    AwsCredential {
        key_id: creds.access_key_id().to_string(),
        secret_key: creds.secret_access_key().to_string(),
        token: creds.session_token().map(str::to_string),
    }
}

/// An error and its sources on one line.
fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let parts: Vec<String> = std::iter::successors(Some(e), |e| e.source())
        .map(|e| e.to_string().replace('\n', " "))
        .collect();
    parts.join(": ")
}

fn fresh(expiry: Option<SystemTime>, now: SystemTime) -> bool {
    match expiry {
        None => true,
        Some(at) => at
            .duration_since(now)
            .is_ok_and(|left| left > REFRESH_BEFORE_EXPIRY),
    }
}

#[async_trait::async_trait]
impl CredentialProvider for AwsConfigCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cached = self.cached.lock().await;
        if let Some((cred, expiry)) = cached.as_ref() {
            #[allow(
                clippy::disallowed_methods,
                reason = "the SDK states credential expiry in the system's time"
            )]
            let now = SystemTime::now();
            if fresh(*expiry, now) {
                return Ok(Arc::clone(cred));
            }
        }
        let creds = self.provider.provide_credentials().await.map_err(|e| {
            object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            }
        })?;
        let cred = Arc::new(credential(&creds));
        *cached = Some((Arc::clone(&cred), creds.expiry()));
        Ok(cred)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_refreshed_five_minutes_before_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(fresh(None, now));
        assert!(fresh(Some(now + Duration::from_secs(301)), now));
        assert!(!fresh(Some(now + Duration::from_secs(299)), now));
        assert!(!fresh(Some(now - Duration::from_secs(1)), now));
    }

    #[tokio::test]
    async fn debug_output_never_shows_the_secret() {
        let creds = aws_credential_types::Credentials::new(
            "AKIDSECRETID",
            "VERYSECRET",
            None,
            None,
            "test",
        );
        let p = adapt(SharedCredentialsProvider::new(creds));
        let c = p.get_credential().await.unwrap();
        assert_eq!(c.secret_key, "VERYSECRET");
        let shown = format!("{p:?} {c:?}");
        assert!(!shown.contains("VERYSECRET"), "{shown}");
    }
}
