//! Shared copies of names that recur in almost every span (services, operations, peers), so
//! that keeping one per span or per batch costs a reference count instead of an allocation.
//!
//! A table fed from spans is bounded: names past [`Names::new`]'s count or length limits are
//! still returned, copied for the caller alone, so crafted spans with endless distinct names
//! cost what they did without the table and never grow it. [`Names::default`] keeps every
//! name, for a set bounded elsewhere (the store's operations).

use std::sync::Arc;

use hashbrown::HashSet;

/// A bounded set of shared names.
#[derive(Debug)]
pub(crate) struct Names {
    set: HashSet<Arc<str>>,
    max: usize,
    max_len: usize,
}

impl Default for Names {
    /// A table keeping every name it is given.
    fn default() -> Self {
        Self::new(usize::MAX, usize::MAX)
    }
}

impl Names {
    /// A table keeping at most `max` names of at most `max_len` bytes each.
    pub(crate) fn new(max: usize, max_len: usize) -> Self {
        Self {
            set: HashSet::new(),
            max,
            max_len,
        }
    }

    /// `name`, shared when the table holds it or has room for it.
    pub(crate) fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.set.get(name) {
            return Arc::clone(shared);
        }
        let name: Arc<str> = name.into();
        if self.set.len() < self.max && name.len() <= self.max_len {
            self.set.insert(Arc::clone(&name));
        }
        name
    }

    /// Names held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_share_one_copy() {
        let mut names = Names::new(4, 16);
        let a = names.get("checkout");
        let b = names.get("checkout");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*a, "checkout");
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn names_past_the_limits_are_copied_and_not_kept() {
        let mut names = Names::new(2, 8);
        let long = names.get("a-name-longer-than-eight");
        assert_eq!(&*long, "a-name-longer-than-eight");
        assert!(!Arc::ptr_eq(&long, &names.get("a-name-longer-than-eight")));
        names.get("one");
        names.get("two");
        let third = names.get("three");
        assert_eq!(&*third, "three");
        assert!(!Arc::ptr_eq(&third, &names.get("three")));
        assert_eq!(names.len(), 2);
    }
}
