//! The words the name-based rules look for, and how a field name splits into words.

use std::collections::HashSet;

/// The words the name-based rules (`money-float`, `time-untyped`, `id-untyped`,
/// `enum-as-string`, `event-signal`) look for among the words of a field name (`createdAt` and
/// `created_at` are `created`, `at`). Each list can be replaced in the configuration's
/// `[names]` table, in the words of a team's domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameWords {
    /// Any of these makes a name money (`total_price`).
    pub money: HashSet<String>,
    /// Any of these makes a money-sounding name a ratio or a count instead (`discount_rate`).
    pub not_money: HashSet<String>,
    /// A name ending in one of these is a time (`created_at`, `delivery_date`).
    pub time: HashSet<String>,
    /// A name ending in one of these is an id (`customer_id`).
    pub id: HashSet<String>,
    /// A name ending in one of these is a closed set of values (`payment_status`).
    pub closed_set: HashSet<String>,
}

fn set(words: &[&str]) -> HashSet<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

impl Default for NameWords {
    fn default() -> Self {
        Self {
            money: set(&[
                "amount", "amounts", "price", "prices", "cost", "costs", "total", "subtotal",
                "fee", "fees", "balance", "money", "tax", "discount", "payment", "salary",
                "revenue", "refund", "charge", "wage", "budget",
            ]),
            not_money: set(&["rate", "ratio", "percent", "percentage", "count", "weight"]),
            time: set(&[
                "at",
                "time",
                "timestamp",
                "ts",
                "date",
                "datetime",
                "when",
                "until",
                "since",
                "expires",
                "expiry",
                "deadline",
            ]),
            id: set(&["id", "uuid", "guid"]),
            closed_set: set(&[
                "status", "state", "type", "kind", "category", "stage", "phase", "level", "mode",
                "role", "tier", "priority", "severity", "outcome", "gender", "channel",
            ]),
        }
    }
}

impl NameWords {
    pub(super) fn is_money(&self, words: &[String]) -> bool {
        words.iter().any(|w| self.money.contains(w))
            && !words.iter().any(|w| self.not_money.contains(w))
    }

    pub(super) fn is_time(&self, words: &[String]) -> bool {
        words.last().is_some_and(|w| self.time.contains(w))
            || words
                .iter()
                .any(|w| w == "timestamp" && self.time.contains(w))
    }

    pub(super) fn is_id(&self, words: &[String]) -> bool {
        words.last().is_some_and(|w| self.id.contains(w))
    }

    pub(super) fn is_closed_set(&self, words: &[String]) -> bool {
        words.last().is_some_and(|w| self.closed_set.contains(w))
    }
}

/// A name split into lower-case words at `_`, `-`, digits-to-letters and camelCase humps
/// (`createdAt`, `created_at` → `created`, `at`; `HTTPStatus` → `http`, `status`).
pub(super) fn words(name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut prev_lower = false;
    // Upper-case letters in a row just before `c`: `HTTPStatus` splits before the `S`.
    let mut upper_run = 0;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            (prev_lower, upper_run) = (false, 0);
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        if c.is_ascii_lowercase() && upper_run >= 2 {
            let last = current.pop();
            out.push(std::mem::take(&mut current));
            current.extend(last);
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        upper_run = if c.is_ascii_uppercase() {
            upper_run + 1
        } else {
            0
        };
        current.push(c.to_ascii_lowercase());
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::words;

    #[test]
    fn names_split_into_words() {
        assert_eq!(words("createdAt"), ["created", "at"]);
        assert_eq!(words("created_at"), ["created", "at"]);
        assert_eq!(words("orderID"), ["order", "id"]);
        assert_eq!(words("HTTPStatus"), ["http", "status"]);
        assert_eq!(words("ID"), ["id"]);
        assert_eq!(words("total2Price"), ["total2", "price"]);
        assert!(words("__").is_empty());
    }
}
