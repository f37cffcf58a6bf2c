//! Search tags for the pre-scan of encoded spans (`Decoded::group_may_match` in `codec.rs`):
//! each tag is resolved once per encoding against its tables, then attribute values are
//! compared without decoding them. The pre-scan may let a span through wrongly (it is then
//! decoded and matched with `TraceQuery::matches_span`), never reject one wrongly.

use std::sync::Arc;

use crate::model::Resource;

/// Tag keys `Span::matches_tag` also derives from span fields rather than attributes: the
/// pre-scan lets every span through for them. Must stay in step with `Span::matches_tag` (a
/// key missing here makes searches miss spans; the model test catches that).
pub(super) const DERIVED_TAG_KEYS: [&str; 6] = [
    "span.kind",
    "error",
    "otel.status_code",
    "otel.status_description",
    "otel.scope.name",
    "otel.scope.version",
];

/// More search tags than this are not pre-checked (one bit per tag per span).
pub(super) const MAX_PRESCAN_TAGS: usize = 64;

/// A search tag `key=value` resolved against one encoding's tables, for the pre-scan: it may
/// say "may match" wrongly, never "cannot match" wrongly.
#[derive(Debug)]
pub(super) struct TagCheck {
    /// String-table indices holding the key (attribute keys are always table entries).
    pub(super) keys: Vec<u64>,
    value: String,
    /// The integer whose decimal form is `value`, if any.
    int: Option<i64>,
    /// Per resource of the table: whether its attributes hold the tag.
    pub(super) resources: Vec<bool>,
}

impl TagCheck {
    /// Resolves `key=value` against an encoding's string table and resources.
    pub(super) fn new(
        strings: &[&str],
        resources: &[Arc<Resource>],
        key: &str,
        value: &str,
    ) -> Self {
        Self {
            keys: (0u64..)
                .zip(strings)
                .filter(|(_, s)| **s == key)
                .map(|(i, _)| i)
                .collect(),
            value: value.to_owned(),
            int: value.parse::<i64>().ok().filter(|i| i.to_string() == value),
            resources: resources
                .iter()
                .map(|r| {
                    r.attributes
                        .iter()
                        .any(|kv| kv.key == key && kv.value.to_search_string() == value)
                })
                .collect(),
        }
    }

    /// Whether an attribute value with this tag's key may make `Span::matches_tag` true.
    pub(super) fn may_match(&self, v: &StoredValue<'_>) -> bool {
        match v {
            StoredValue::Str(s) => *s == self.value.as_bytes(),
            StoredValue::Int(i) => self.int == Some(*i),
            StoredValue::Bool(b) => self.value == if *b { "true" } else { "false" },
            StoredValue::Empty => self.value.is_empty(),
            StoredValue::Other => true,
        }
    }
}

/// An attribute value as the pre-scan sees it, without allocating.
#[derive(Debug)]
pub(super) enum StoredValue<'a> {
    Str(&'a [u8]),
    Int(i64),
    Bool(bool),
    Empty,
    /// Double, bytes, array or map: compared after decoding.
    Other,
}
