//! What happens to the later events of a key after one of its events was dead-lettered: the
//! relay's policy (DESIGN §5.5) and the inbox consumer's.

use serde::Deserialize;

/// What to do with the later events of a key whose event was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoisonPolicy {
    /// Park them in the dead-letter table too, so the key's order survives a retry.
    #[default]
    Block,
    /// Let them through; only the poison event is set aside.
    Skip,
}
