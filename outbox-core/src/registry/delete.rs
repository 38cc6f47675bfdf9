//! Confluent's two-step deletes (soft, then permanent), refusing to remove the last copy of a
//! schema that unpublished rows still carry.

use super::{Registry, SchemaStore, VersionState};
use crate::{DeleteRefusal, Error, Result};

impl<S: SchemaStore> Registry<S> {
    /// Deletes a version (`None`: the latest), Confluent's way: first softly (it disappears
    /// from reads and checks, its id still resolves), then with `permanent` for good. A
    /// permanent delete is refused while it would remove the last copy of a schema that
    /// unpublished outbox rows or dead letters still carry. Returns the version deleted.
    ///
    /// # Errors
    ///
    /// [`Error::SubjectNotFound`], [`Error::VersionNotFound`], [`Error::DeleteRefused`],
    /// store errors ([`Error::Unsupported`] for stores without deletes).
    pub async fn delete_version(
        &self,
        subject: &str,
        version: Option<u32>,
        permanent: bool,
    ) -> Result<u32> {
        let states = self.store().version_states(subject).await?;
        if states.is_empty() {
            return Err(Error::SubjectNotFound {
                subject: subject.to_owned(),
            });
        }
        let found = match version {
            Some(v) => states.iter().find(|s| s.version == v),
            // "latest" is the latest live version; for a permanent delete, the latest one.
            None => states.iter().rev().find(|s| permanent || !s.deleted),
        };
        let Some(target) = found.copied() else {
            return Err(match version {
                Some(version) => Error::VersionNotFound {
                    subject: subject.to_owned(),
                    version,
                },
                None => Error::SubjectNotFound {
                    subject: subject.to_owned(),
                },
            });
        };
        let refused = |refusal| Error::DeleteRefused {
            subject: subject.to_owned(),
            version: Some(target.version),
            refusal,
        };
        if permanent {
            if !target.deleted {
                return Err(refused(DeleteRefusal::NotSoftDeleted));
            }
            self.check_unused(subject, &[target]).await?;
            self.store().hard_delete(subject, target.version).await?;
        } else {
            if target.deleted {
                return Err(refused(DeleteRefusal::SoftDeleted));
            }
            self.store().soft_delete(subject, target.version).await?;
        }
        Ok(target.version)
    }

    /// Deletes every version of a subject, softly or (once soft-deleted) for good, with the
    /// rules of [`delete_version`](Self::delete_version). Returns the versions deleted.
    ///
    /// # Errors
    ///
    /// [`Error::SubjectNotFound`], [`Error::DeleteRefused`], store errors.
    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<u32>> {
        let states = self.store().version_states(subject).await?;
        if states.is_empty() {
            return Err(Error::SubjectNotFound {
                subject: subject.to_owned(),
            });
        }
        let live: Vec<u32> = states
            .iter()
            .filter(|s| !s.deleted)
            .map(|s| s.version)
            .collect();
        let refused = |refusal| Error::DeleteRefused {
            subject: subject.to_owned(),
            version: None,
            refusal,
        };
        if permanent {
            if !live.is_empty() {
                return Err(refused(DeleteRefusal::NotSoftDeleted));
            }
            self.check_unused(subject, &states).await?;
            for s in &states {
                self.store().hard_delete(subject, s.version).await?;
            }
            Ok(states.iter().map(|s| s.version).collect())
        } else {
            if live.is_empty() {
                return Err(refused(DeleteRefusal::SoftDeleted));
            }
            for v in &live {
                self.store().soft_delete(subject, *v).await?;
            }
            Ok(live)
        }
    }

    /// Refuses to remove `targets` if that removes the last copy of a schema that outbox rows
    /// still carry.
    async fn check_unused(&self, subject: &str, targets: &[VersionState]) -> Result<()> {
        for target in targets {
            let removed = targets.iter().filter(|t| t.id == target.id).count() as u64;
            let (holders, carried) = self.store().schema_usage(target.id).await?;
            if carried > 0 && holders <= removed {
                return Err(Error::DeleteRefused {
                    subject: subject.to_owned(),
                    version: Some(target.version),
                    refusal: DeleteRefusal::InUse { id: target.id },
                });
            }
        }
        Ok(())
    }
}
