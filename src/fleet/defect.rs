//! A planted defect, to show the checker catches real bugs: a store that ignores every
//! precondition (create-if-absent and If-Match become plain overwrites). Built with a fixed
//! strategy, so the capability probe that would refuse it is bypassed.

use object_store::path::Path;
use object_store::{PutMode, PutOptions};

use crate::store::fault::Hook;

/// Treats every conditional PUT as an unconditional overwrite: a hook on a
/// [`FaultStore`](crate::store::fault::FaultStore).
pub struct IgnorePreconditions;

impl Hook for IgnorePreconditions {
    fn put_options(&self, _path: &Path, opts: PutOptions) -> PutOptions {
        PutOptions {
            mode: PutMode::Overwrite,
            ..opts
        }
    }
}
